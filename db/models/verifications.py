"""Verifications: a retraining of a ticket with controls. The row is the job.

Workers claim queued rows with ``FOR UPDATE SKIP LOCKED`` under a lease
(``lease_token`` + ``lease_expires_at``) and write only while their token matches;
see ``db/queue.py`` and ``docs/verification.md``.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import Boolean, CheckConstraint, Dialect, Float, ForeignKey, Index, Integer, String, Text, false, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator
from sqlalchemy.orm import Mapped, mapped_column, relationship

from db.base import Base, CreatedAt, Sha256, Timestamp, UUIDPrimaryKey
from nirvana.states import VerificationState

if TYPE_CHECKING:
    from db.models.tickets import Ticket


_STATES = ", ".join(f"'{s.value}'" for s in VerificationState)


class _StateColumn(TypeDecorator[VerificationState]):
    """A ``VerificationState`` stored as its value in ``VARCHAR(16)`` (the CHECK
    constraint above lists the values), read back as the enum."""

    impl = String(16)
    cache_ok = True

    def process_bind_param(self, value: VerificationState | str | None, dialect: Dialect) -> str | None:
        return None if value is None else VerificationState(value).value

    def process_result_value(self, value: str | None, dialect: Dialect) -> VerificationState | None:
        return None if value is None else VerificationState(value)


class Verification(Base):
    __tablename__ = "verifications"
    __table_args__ = (
        CheckConstraint(f"state IN ({_STATES})", name="state_known"),
        CheckConstraint("attempts >= 0 AND attempts <= max_attempts", name="attempts_range"),
        CheckConstraint("progress >= 0 AND progress <= 1", name="progress_range"),
        # Workers look for the oldest queued job; keep that lookup off the finished rows.
        Index("ix_verifications_queued", "created_at", postgresql_where=text("state = 'queued'")),
        Index("ix_verifications_running_lease", "lease_expires_at", postgresql_where=text("state = 'running'")),
    )

    id: Mapped[UUIDPrimaryKey]
    ticket_id: Mapped[Sha256] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    #: The user whose token queued it (the uploader, for the one queued at upload).
    #: They, the ticket's uploader and ``admin`` tokens may cancel it; None when unknown.
    requested_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    task: Mapped[str] = mapped_column(String(100))
    recipe: Mapped[dict[str, Any]] = mapped_column(JSONB)
    claimed_accuracy: Mapped[float] = mapped_column(Float)

    state: Mapped[VerificationState] = mapped_column(_StateColumn(), server_default=VerificationState.QUEUED.value)
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    max_attempts: Mapped[int] = mapped_column(Integer, server_default="3")
    progress: Mapped[float] = mapped_column(Float, server_default="0")
    cancel_requested: Mapped[bool] = mapped_column(Boolean, server_default=false())

    lease_token: Mapped[uuid.UUID | None]
    lease_expires_at: Mapped[Timestamp | None]
    worker_id: Mapped[str | None] = mapped_column(String(200))
    heartbeat_at: Mapped[Timestamp | None]

    result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    error: Mapped[str | None] = mapped_column(Text)

    created_at: Mapped[CreatedAt]
    started_at: Mapped[Timestamp | None]
    finished_at: Mapped[Timestamp | None]

    ticket: Mapped[Ticket] = relationship(back_populates="verifications", lazy="raise")

    @property
    def finished(self) -> bool:
        return self.state.finished


"""Tickets: (architecture, init, mask), content-addressed and immutable."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import BigInteger, Boolean, CheckConstraint, Float, ForeignKey, Index, Integer, String, Text, false
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from db.base import Base, CreatedAt, Sha256, sha256_check
from db.models.users import User
from db.models.verifications import Verification


class Ticket(Base):
    """One winning-ticket candidate and what its submitter claims for it.

    ``id`` is the SHA-256 of the canonical (architecture, init scheme, seed, rewind
    step, init digest, mask digest); the same ticket uploaded twice is one row.
    Sparsity figures are computed by the server from the mask, never taken from the
    manifest. ``accuracy`` is the sort key for "-accuracy": the verified ticket
    accuracy once a verification succeeds, the claimed one before.
    """

    __tablename__ = "tickets"
    __table_args__ = (
        CheckConstraint(sha256_check("id"), name="id_hex"),
        CheckConstraint(sha256_check("init_digest"), name="init_digest_hex"),
        CheckConstraint(sha256_check("mask_digest"), name="mask_digest_hex"),
        CheckConstraint("density > 0 AND density <= 1", name="density_range"),
        CheckConstraint("claimed_accuracy >= 0 AND claimed_accuracy <= 1", name="claimed_accuracy_range"),
        CheckConstraint("rewind_step >= 0", name="rewind_step_nonnegative"),
        CheckConstraint("remaining > 0 AND remaining <= prunable", name="remaining_range"),
        Index("ix_tickets_task_density", "task", "density", "id"),
        Index("ix_tickets_task_accuracy", "task", "accuracy", "id"),
        Index("ix_tickets_created_at", "created_at", "id"),
        # The default sort (-created) within a task or an architecture.
        Index("ix_tickets_task_created_at", "task", "created_at", "id"),
        Index("ix_tickets_architecture_created_at", "architecture", "created_at", "id"),
        Index("ix_tickets_tags", "tags", postgresql_using="gin"),
        Index("ix_tickets_task_parameters_kept", "task", "parameters_kept"),
        CheckConstraint("init_kept_digest IS NULL OR " + sha256_check("init_kept_digest"), name="init_kept_digest_hex"),
    )

    id: Mapped[Sha256] = mapped_column(primary_key=True)
    architecture: Mapped[str] = mapped_column(String(100), index=True)
    task: Mapped[str] = mapped_column(String(100))
    init_scheme: Mapped[str] = mapped_column(String(50))
    seed: Mapped[int | None] = mapped_column(BigInteger)
    rewind_step: Mapped[int] = mapped_column(Integer)
    init_digest: Mapped[Sha256]
    mask_digest: Mapped[Sha256]
    mask_sha256: Mapped[Sha256] = mapped_column(ForeignKey("blobs.sha256"))
    init_sha256: Mapped[Sha256] = mapped_column(ForeignKey("blobs.sha256"))
    # The compact forms (lottery.tickets.compact), stored content-addressed at upload.
    # NULL on tickets stored before they existed: the first download derives them.
    mask_packed_sha256: Mapped[str | None] = mapped_column(String(64), ForeignKey("blobs.sha256"))
    init_kept_sha256: Mapped[str | None] = mapped_column(String(64), ForeignKey("blobs.sha256"))
    # tensors_digest of the init with pruned weights zeroed: what the kept form rebuilds.
    init_kept_digest: Mapped[str | None] = mapped_column(String(64))
    # lottery.models.footprint: parameters, MACs, bytes per form, the compact shape.
    footprint: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    parameters_kept: Mapped[int | None] = mapped_column(BigInteger)

    manifest: Mapped[dict[str, Any]] = mapped_column(JSONB)
    recipe: Mapped[dict[str, Any]] = mapped_column(JSONB)
    claimed_accuracy: Mapped[float] = mapped_column(Float)
    method: Mapped[str] = mapped_column(String(50))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, server_default="")
    tags: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    license: Mapped[str] = mapped_column(String(50))
    parent_id: Mapped[str | None] = mapped_column(String(64))

    density: Mapped[float] = mapped_column(Float)
    remaining: Mapped[int] = mapped_column(BigInteger)
    prunable: Mapped[int] = mapped_column(BigInteger)
    layers: Mapped[dict[str, Any]] = mapped_column(JSONB)

    accuracy: Mapped[float] = mapped_column(Float)
    verified: Mapped[bool] = mapped_column(Boolean, server_default=false())
    verified_accuracy: Mapped[float | None] = mapped_column(Float)
    winning: Mapped[bool | None] = mapped_column(Boolean)

    submitter_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[CreatedAt]

    submitter: Mapped[User] = relationship(lazy="raise")
    verifications: Mapped[list[Verification]] = relationship(
        back_populates="ticket", lazy="raise", order_by="Verification.created_at"
    )

    @property
    def sparsity(self) -> float:
        return 1.0 - self.density

    @property
    def short_id(self) -> str:
        return self.id[:12]

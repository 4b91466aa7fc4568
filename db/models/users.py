"""People who upload tickets, and their API tokens (stored hashed, with scopes)."""

from __future__ import annotations

import uuid

from sqlalchemy import ARRAY, CheckConstraint, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from db.base import Base, CreatedAt, Sha256, Timestamp, UUIDPrimaryKey, sha256_check

#: ``admin`` grants every other scope, and acts on anyone's verifications (cancel, queue again).
SCOPES = ("read", "write", "verify", "admin")


class User(Base):
    __tablename__ = "users"

    id: Mapped[UUIDPrimaryKey]
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[CreatedAt]

    tokens: Mapped[list[ApiToken]] = relationship(back_populates="user", lazy="raise")


class ApiToken(Base):
    """A bearer token. Only ``token_hash`` (SHA-256 of the secret) is ever stored."""

    __tablename__ = "api_tokens"
    __table_args__ = (CheckConstraint(sha256_check("token_hash"), name="token_hash_hex"),)

    id: Mapped[UUIDPrimaryKey]
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[Sha256] = mapped_column(unique=True)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(Text))
    created_at: Mapped[CreatedAt]
    last_used_at: Mapped[Timestamp | None]
    revoked_at: Mapped[Timestamp | None]

    user: Mapped[User] = relationship(back_populates="tokens", lazy="raise")

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def allows(self, scope: str) -> bool:
        """Whether this token may act with ``scope``: it carries it, or ``admin``."""
        return self.active and (scope in self.scopes or "admin" in self.scopes)

    @property
    def is_admin(self) -> bool:
        return self.allows("admin")


"""The blob index: which content-addressed files exist in storage, and how big."""

from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, CreatedAt, Sha256, sha256_check


class Blob(Base):
    """One stored file, keyed by the SHA-256 of its bytes.

    The file is durable in storage before the row that names it commits; a blob no
    ticket references is garbage and may be collected.
    """

    __tablename__ = "blobs"
    __table_args__ = (
        CheckConstraint(sha256_check("sha256"), name="sha256_hex"),
        CheckConstraint("size >= 0", name="size_nonnegative"),
    )

    sha256: Mapped[Sha256] = mapped_column(primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    media_type: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[CreatedAt]

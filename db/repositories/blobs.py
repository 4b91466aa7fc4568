"""The blob index, and collecting blobs no row references."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from db.models.blobs import Blob
from db.models.tickets import Ticket


def record_blob(session: Session, *, sha256: str, size: int, media_type: str) -> None:
    """Index a blob already durable in storage (recording it twice is a no-op)."""
    session.execute(
        insert(Blob).values(sha256=sha256, size=size, media_type=media_type).on_conflict_do_nothing(index_elements=["sha256"])
    )


def referenced_digests(session: Session, digests: list[str]) -> set[str]:
    """Which of ``digests`` some ticket names."""
    if not digests:
        return set()
    mask = select(Ticket.mask_sha256).where(Ticket.mask_sha256.in_(digests))
    init = select(Ticket.init_sha256).where(Ticket.init_sha256.in_(digests))
    return set(session.scalars(mask.union(init)))


def get_blob(session: Session, sha256: str) -> Blob | None:
    return session.get(Blob, sha256)

"""The blob index, and collecting blobs no row references."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from db.models.blobs import Blob
from db.models.tickets import Ticket


def record_blob(session: Session, *, sha256: str, size: int, media_type: str) -> None:
    """Index a blob already durable in storage (recording it twice is a no-op)."""
    session.execute(
        insert(Blob).values(sha256=sha256, size=size, media_type=media_type).on_conflict_do_nothing(index_elements=["sha256"])
    )


def indexed_digests(session: Session, *, among: list[str] | None = None, older_than: dt.datetime | None = None) -> set[str]:
    """The digests the index holds: all, or those ``among`` the given ones, or those
    recorded before ``older_than``."""
    query = select(Blob.sha256)
    if among is not None:
        query = query.where(Blob.sha256.in_(among))
    if older_than is not None:
        query = query.where(Blob.created_at < older_than)
    return set(session.scalars(query))


def delete_blob_rows(session: Session, digests: list[str]) -> None:
    """Drop the index rows of ``digests`` (their files are the caller's) and flush."""
    if digests:
        session.execute(delete(Blob).where(Blob.sha256.in_(digests)))
        session.flush()


def referenced_digests(session: Session, digests: list[str]) -> set[str]:
    """Which of ``digests`` some ticket names."""
    if not digests:
        return set()
    columns = (Ticket.mask_sha256, Ticket.init_sha256, Ticket.mask_packed_sha256, Ticket.init_kept_sha256)
    selects = [select(column).where(column.in_(digests)) for column in columns]
    return {sha for sha in session.scalars(selects[0].union(*selects[1:])) if sha is not None}


def lock_blob(session: Session, sha256: str) -> None:
    """Hold a transaction-scoped advisory lock on one digest until the caller's
    transaction ends. Whoever writes, reuses or deletes a blob takes it first, so an
    upload that reuses a file and a cleanup that removes it never interleave."""
    key = int.from_bytes(bytes.fromhex(sha256[:16]), "big", signed=True)
    session.execute(select(func.pg_advisory_xact_lock(key)))

"""Collecting blobs no ticket references.

Two kinds of garbage: indexed blobs whose tickets are gone, and files in storage with
no index row (an upload that crashed after ``put`` and before its commit). Anything
younger than ``grace`` is kept, because an upload in flight writes its blobs before
the rows that name them commit.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.orm import Session

from db.blobs import BlobNotFoundError, BlobStorage
from db.repositories.blobs import delete_blob_rows, indexed_digests, lock_blob, referenced_digests


@dataclass(frozen=True)
class GarbageReport:
    unreferenced_rows: list[str]
    orphan_files: list[str]

    @property
    def removed(self) -> int:
        return len(self.unreferenced_rows) + len(self.orphan_files)


def collect_garbage(
    session: Session, storage: BlobStorage, *, grace: dt.timedelta = dt.timedelta(hours=1), dry_run: bool = False
) -> GarbageReport:
    """Remove (unless ``dry_run``) every blob older than ``grace`` that no ticket
    names: its file first, then its row. Flushes; the caller commits."""
    cutoff = dt.datetime.now(dt.UTC) - grace
    old_rows = sorted(indexed_digests(session, older_than=cutoff))
    keep = referenced_digests(session, old_rows)
    unreferenced = sorted(sha for sha in old_rows if sha not in keep)

    indexed = indexed_digests(session)
    orphans = sorted(sha for sha in storage.iter_digests() if sha not in indexed and _older(storage, sha, cutoff))
    if dry_run:
        return GarbageReport(unreferenced, orphans)
    # Uploads hold a digest's lock from reusing a file until they commit: under the
    # lock, check again, so a file an upload has just reused is never removed.
    for sha in sorted(unreferenced + orphans):
        lock_blob(session, sha)
    unreferenced = [sha for sha in unreferenced if sha not in referenced_digests(session, unreferenced)]
    indexed = indexed_digests(session, among=orphans)
    orphans = [sha for sha in orphans if sha not in indexed and _older(storage, sha, cutoff)]
    for sha in unreferenced + orphans:
        storage.delete(sha)
    delete_blob_rows(session, unreferenced)
    return GarbageReport(unreferenced, orphans)


def _older(storage: BlobStorage, sha: str, cutoff: dt.datetime) -> bool:
    """Whether the file was last written before ``cutoff`` (False if it is gone)."""
    try:
        return storage.modified_at(sha) < cutoff
    except BlobNotFoundError:
        return False

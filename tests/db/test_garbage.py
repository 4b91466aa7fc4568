"""Garbage collection keeps what tickets name and what is too young to judge."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db.blobs import LocalBlobStorage
from db.garbage import collect_garbage
from db.models.blobs import Blob
from db.repositories.blobs import record_blob
from tests.factories.tickets import store_ticket

HOUR = dt.timedelta(hours=1)


def _age_file(storage: LocalBlobStorage, sha: str, hours: float) -> None:
    path = storage.root / f"{sha[:2]}/{sha[2:4]}/{sha[4:]}"
    then = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=hours)).timestamp()
    os.utime(path, (then, then))


def _age_rows(session: Session, hours: float) -> None:
    session.execute(update(Blob).values(created_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=hours)))


def test_collects_unreferenced_and_orphaned_blobs_past_the_grace(db_session: Session, tmp_path: Path) -> None:
    storage = LocalBlobStorage(tmp_path / "blobs")
    ticket = store_ticket(db_session, storage)
    loose = storage.put(b"an upload whose ticket was deleted")
    record_blob(db_session, sha256=loose, size=10, media_type="application/octet-stream")
    orphan = storage.put(b"a blob written by an upload that crashed before its commit")
    fresh_orphan = storage.put(b"an upload still in flight")
    _age_rows(db_session, 2)
    for sha in (loose, orphan, ticket.mask_sha256, ticket.init_sha256):
        _age_file(storage, sha, 2)

    dry = collect_garbage(db_session, storage, grace=HOUR, dry_run=True)
    assert (dry.unreferenced_rows, dry.orphan_files) == ([loose], [orphan]) and storage.exists(loose)

    report = collect_garbage(db_session, storage, grace=HOUR)
    assert report.removed == 2
    assert not storage.exists(loose) and not storage.exists(orphan)
    assert storage.exists(fresh_orphan)
    assert storage.exists(ticket.mask_sha256) and storage.exists(ticket.init_sha256)
    assert set(db_session.scalars(select(Blob.sha256))) == {ticket.mask_sha256, ticket.init_sha256}


def test_young_unreferenced_rows_are_kept(db_session: Session, tmp_path: Path) -> None:
    storage = LocalBlobStorage(tmp_path / "blobs")
    sha = storage.put(b"just uploaded")
    record_blob(db_session, sha256=sha, size=13, media_type="application/octet-stream")
    assert collect_garbage(db_session, storage, grace=HOUR).removed == 0
    assert db_session.get(Blob, sha) is not None and storage.exists(sha)

"""A failed upload's cleanup never removes a file a concurrent upload is committing."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy.orm import Session

from api.submissions import _remove_unreferenced
from db.blobs import LocalBlobStorage
from db.repositories.blobs import lock_blob
from db.session import make_engine
from tests.factories.tickets import store_ticket


def test_cleanup_waits_for_the_upload_that_reuses_the_blob(fresh_database_url: str, tmp_path: Path) -> None:
    engine = make_engine(fresh_database_url)
    storage = LocalBlobStorage(tmp_path / "blobs")
    try:
        with Session(engine) as uploader, Session(engine) as failed:
            # Upload B reuses the file (under its digest's lock) and has not committed yet.
            sha = store_ticket(uploader, storage).mask_sha256
            lock_blob(uploader, sha)

            # Upload A, which wrote the same file and failed, cleans up meanwhile.
            cleanup = threading.Thread(target=_remove_unreferenced, args=(failed, storage, [sha]))
            cleanup.start()
            cleanup.join(timeout=1.0)
            assert cleanup.is_alive(), "the cleanup must wait for the digest's lock"

            uploader.commit()
            cleanup.join(timeout=10)
            assert not cleanup.is_alive()
            failed.commit()
        assert storage.exists(sha), "the committed ticket's file was removed"
    finally:
        engine.dispose()


def test_cleanup_removes_a_file_nobody_references(fresh_database_url: str, tmp_path: Path) -> None:
    engine = make_engine(fresh_database_url)
    storage = LocalBlobStorage(tmp_path / "blobs")
    sha = storage.put(b"written by an upload that then failed")
    try:
        with Session(engine) as failed:
            _remove_unreferenced(failed, storage, [sha])
            failed.commit()
    finally:
        engine.dispose()
    assert not storage.exists(sha)

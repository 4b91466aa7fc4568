"""An app on the real migrated database; each test's writes are rolled back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.app import create_app
from api.deps import get_session
from api.settings import ApiSettings
from db.models.blobs import Blob
from db.models.tickets import Ticket
from db.models.verifications import Verification
from db.tokens import create_token


@pytest.fixture
def blob_dir(tmp_path: Path) -> Path:
    return tmp_path / "blobs"


@pytest.fixture
def client(database_url: str, db_session: Session, blob_dir: Path) -> Iterator[TestClient]:
    # No read cache: the writes of these tests are never committed, so the database
    # never announces them (tests/e2e/test_read_cache.py tests the cache).
    settings = ApiSettings(
        database_url=database_url, blob_dir=blob_dir, max_upload_bytes=2_000_000, max_steps=5_000, read_cache_mb=0
    )
    app = create_app(settings)

    def session_override() -> Iterator[Session]:
        yield db_session
        db_session.flush()

    app.dependency_overrides[get_session] = session_override
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def token(db_session: Session) -> str:
    _, secret = create_token(db_session, user_name="alice", token_name="tests", scopes=("read", "write"))
    return secret


@pytest.fixture
def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def stored_counts(session: Session, blob_dir: Path) -> tuple[int, int, int, int]:
    """(tickets, verifications, blob rows, blob files) — all zero when nothing was kept."""
    files = [p for p in blob_dir.rglob("*") if p.is_file()] if blob_dir.exists() else []
    return (
        session.scalar(select(func.count()).select_from(Ticket)) or 0,
        session.scalar(select(func.count()).select_from(Verification)) or 0,
        session.scalar(select(func.count()).select_from(Blob)) or 0,
        len(files),
    )

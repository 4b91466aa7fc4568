"""The worker tests' fixtures: a committed database, its sessions, blobs, worker processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from db.blobs import LocalBlobStorage
from db.session import make_engine, make_sessionmaker
from tests.worker.support import Workers


@pytest.fixture
def engine(fresh_database_url: str) -> Iterator[Engine]:
    engine = make_engine(fresh_database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def factory(engine: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(engine)


@pytest.fixture
def storage(tmp_path: Path) -> LocalBlobStorage:
    return LocalBlobStorage(tmp_path / "blobs")


@pytest.fixture
def workers(fresh_database_url: str, storage: LocalBlobStorage, tmp_path: Path) -> Iterator[Workers]:
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    started = Workers(fresh_database_url, storage.root, pid_dir)
    yield started
    started.stop_all()

"""Fixtures of the nirvana tests."""

from __future__ import annotations

import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def client_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A download cache of the test's own (``NIRVANA_CACHE``), never the user's."""
    path = tmp_path / "client-cache"
    monkeypatch.setenv("NIRVANA_CACHE", str(path))
    return path


@pytest.fixture
def embedded_home() -> Iterator[Path]:
    """A ``NIRVANA_HOME`` for an embedded PostgreSQL, outside pytest's ``tmp_path``.

    Running as root, pgserver runs postgres as a system user and opens the directories
    above the data directory to it; pytest resets ``/tmp/pytest-of-<user>`` to 0700
    whenever any session starts, which would lock that user out mid-test."""
    home = Path(tempfile.mkdtemp(prefix="nirvana-test-home-"))
    yield home
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveApi:
    url: str
    token: str
    database_url: str


@pytest.fixture
def live_api(fresh_database_url: str, tmp_path: Path, free_port: int) -> Iterator[LiveApi]:
    """The real API (``create_app``) served by uvicorn on a free port, in a thread, on
    a database of the test's own, with a write token for user ``alice``; its task data
    lives in ``tmp_path / "data"``."""
    import uvicorn

    from api.app import create_app
    from api.settings import ApiSettings
    from db.session import make_engine, make_sessionmaker, unit_of_work
    from db.tokens import create_token

    engine = make_engine(fresh_database_url)
    with unit_of_work(make_sessionmaker(engine)) as session:
        _, secret = create_token(session, user_name="alice", token_name="tests", scopes=("read", "write"))
    engine.dispose()

    settings = ApiSettings(
        database_url=fresh_database_url, blob_dir=tmp_path / "server-blobs", data_dir=tmp_path / "data", max_steps=5_000
    )
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=free_port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield LiveApi(url=f"http://127.0.0.1:{free_port}", token=secret, database_url=fresh_database_url)
    finally:
        server.should_exit = True
        thread.join(10)

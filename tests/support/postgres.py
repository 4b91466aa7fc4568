"""Finding a real PostgreSQL for the tests and making throwaway databases on it.

Order: ``DATABASE_URL`` (a server URL whose databases we may create and drop), else the
local server on 127.0.0.1:5432 if it answers, else an embedded one (pgserver) in a
temporary directory.
"""

from __future__ import annotations

import os
import socket
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from sqlalchemy.engine import make_url

LOCAL_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@contextmanager
def server_url() -> Iterator[str]:
    """A libpq URL of a server's maintenance database (``postgres``)."""
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
        return
    if _port_open("127.0.0.1", 5432):
        yield LOCAL_URL
        return
    import pgserver

    with tempfile.TemporaryDirectory(prefix="nirvana-test-pg-") as tmp:
        server = pgserver.get_server(tmp, cleanup_mode="stop")
        try:
            yield server.get_uri()
        finally:
            server.cleanup()


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` instead."""
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def create_database(url: str, prefix: str) -> str:
    """Create an empty database named after ``prefix``; return its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return with_database(url, name)


def drop_database(url: str, database_url: str) -> None:
    name = make_url(database_url).database
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

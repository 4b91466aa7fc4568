"""Fixtures of the nirvana tests."""

from __future__ import annotations

import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


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

"""Real processes for end-to-end tests: uvicorn and workers, on loopback only."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def service_env(database_url: str, blob_dir: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "DATABASE_URL": database_url, "NIRVANA_BLOB_DIR": str(blob_dir), "PYTHONUNBUFFERED": "1"}
    env.update(extra)
    return env


@contextmanager
def running(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``python args...`` from the repo root; SIGINT, then SIGKILL, at the end."""
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


@contextmanager
def uvicorn_server(env: dict[str, str], log: Path, health_timeout: float = 30) -> Iterator[str]:
    """A real uvicorn serving ``api.main:app_from_env`` on a free port; yields its URL."""
    port = free_port()
    args = ["-m", "uvicorn", "api.main:app_from_env", "--factory", "--host", "127.0.0.1", "--port", str(port), "--no-proxy-headers"]
    with running(args, env, log) as process:
        url = f"http://127.0.0.1:{port}"
        wait_until_healthy(url, process, log, timeout=health_timeout)
        yield url


def wait_until_healthy(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"server at {url} not healthy after {timeout}s:\n{log.read_text()}")


@dataclass
class ServedTicket:
    """A server with one ticket on it: its URL and database, the uploader's
    Authorization header, the ticket as the API answered it."""

    url: str
    database_url: str
    auth: dict[str, str]
    ticket: dict[str, Any]


@contextmanager
def uvicorn_with_ticket(database_url: str, tmp: Path, user: str, *, mask_seed: int = 0, **settings: str) -> Iterator[ServedTicket]:
    """``uvicorn_server`` on ``database_url`` with ``settings`` (``NIRVANA_…``), blobs
    under ``tmp``, and one ticket uploaded with a committed write token of ``user``."""
    from tests.support.tickets import make_ticket
    from tests.support.tokens import committed_token

    auth = {"Authorization": f"Bearer {committed_token(database_url, user)}"}
    with uvicorn_server(service_env(database_url, tmp / "blobs", **settings), tmp / "api.log") as url:
        answer = httpx.post(f"{url}/api/v1/tickets", files=make_ticket(mask_seed=mask_seed).multipart(), headers=auth, timeout=60)
        assert answer.status_code == 201, answer.text
        yield ServedTicket(url, database_url, auth, answer.json())

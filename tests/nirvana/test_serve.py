"""``nirvana serve`` for real: embedded PostgreSQL, API, a worker; Ctrl-C; restart."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.support.tickets import make_ticket

ROOT = Path(__file__).resolve().parents[2]


class Serve:
    """A ``nirvana serve`` subprocess whose stdout is read line by line in a thread."""

    def __init__(self, home: Path, port: int) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "NIRVANA_DATABASE_URL")}
        env.update(NIRVANA_HOME=str(home), PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "nirvana", "serve", "--port", str(port), "--workers", "1"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            self.lines.put(line)

    def line(self, prefix: str, timeout: float = 120) -> str:
        """The next printed line that starts with ``prefix`` (spaces aside)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                assert self.process.poll() is None, "".join(self.output)
                continue
            if line.strip().startswith(prefix):
                return line.strip()
        raise AssertionError(f"no {prefix!r} printed:\n" + "".join(self.output))

    def token(self) -> str:
        """The token printed in the banner."""
        return self.line("Token").split()[-1]

    def interrupt(self, timeout: float = 15) -> int:
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError("serve did not stop after SIGINT:\n" + "".join(self.output)) from None
        finally:
            self.reader.join(5)
            assert self.process.stdout is not None
            self.process.stdout.close()


def wait_healthy(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "no /api/v1/health"
        time.sleep(0.2)


@pytest.mark.e2e
def test_serve_runs_everything_stops_on_ctrl_c_and_finds_its_data_again(embedded_home: Path, free_port: int) -> None:
    url = f"http://127.0.0.1:{free_port}"
    serve = Serve(embedded_home, free_port)
    try:
        token = serve.token()
        # The banner comes once the port accepts connections, and says how to use it:
        # one request, no waiting, must be answered.
        assert serve.line("export NIRVANA_URL=") == f"export NIRVANA_URL={url}"
        assert httpx.get(f"{url}/api/v1/health", timeout=10).status_code == 200
        auth = {"Authorization": f"Bearer {token}"}
        # The printed token passes authentication: 404 for the missing job, not 401.
        cancel = httpx.post(f"{url}/api/v1/verifications/{uuid.uuid4()}/cancel", headers=auth)
        assert cancel.json()["code"] == "verification_not_found"
        uploaded = httpx.post(f"{url}/api/v1/tickets", files=make_ticket().multipart(), headers=auth)
        assert uploaded.status_code == 201, uploaded.text
        assert (embedded_home / "token").stat().st_mode & 0o777 == 0o600
        # The worker child claims the queued verification.
        verification = uploaded.json()["verifications"][0]["id"]
        deadline = time.monotonic() + 120
        while httpx.get(f"{url}/api/v1/verifications/{verification}").json()["state"] == "queued":
            assert time.monotonic() < deadline, "no worker claimed the verification"
            time.sleep(0.3)
    finally:
        code = serve.interrupt()
    assert code == 0, "".join(serve.output)
    assert "Traceback" not in "".join(serve.output)
    assert not (embedded_home / "pg" / "postmaster.pid").exists()  # the server stopped

    again = Serve(embedded_home, free_port)
    try:
        assert again.token() == token  # still valid, so reused
        wait_healthy(url)
        ticket = httpx.get(f"{url}/api/v1/tickets/{uploaded.json()['id']}")
        assert ticket.status_code == 200
    finally:
        assert again.interrupt() == 0, "".join(again.output)

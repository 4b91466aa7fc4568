"""Retries with backoff (stamina) against real servers: a proxy in front of the real
API that fails the first requests it is told to, and a port where nothing listens."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import stamina

from nirvana import Client
from nirvana.errors import NirvanaError, ServerUnreachableError
from tests.nirvana.conftest import LiveApi
from tests.support.tickets import make_ticket


@dataclass
class Flaky:
    """Answers ``statuses`` in turn to the next requests of ``method`` whose path ends
    with ``suffix``, and passes every other request to the real API."""

    url: str
    failures: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    seen: list[tuple[str, str, int]] = field(default_factory=list)

    def fail_next(self, method: str, *statuses: int, suffix: str = "") -> None:
        self.failures[(method, suffix)] = list(statuses)

    def pending(self, method: str, path: str) -> list[int]:
        for (m, suffix), statuses in self.failures.items():
            if m == method and path.endswith(suffix) and statuses:
                return statuses
        return []


@pytest.fixture
def flaky(live_api: LiveApi) -> Iterator[Flaky]:
    upstream = httpx.Client(base_url=live_api.url, timeout=30)
    state = Flaky(url="")

    class Proxy(http.server.BaseHTTPRequestHandler):
        def _relay(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            pending = state.pending(self.command, self.path)
            if pending:
                status = pending.pop(0)
                state.seen.append((self.command, self.path, status))
                payload = json.dumps({"code": "unavailable", "status": status, "detail": "try again"}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/problem+json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
            answer = upstream.request(self.command, self.path, content=body, headers=headers)
            state.seen.append((self.command, self.path, answer.status_code))
            self.send_response(answer.status_code)
            for name, value in answer.headers.items():
                if name.lower() not in ("content-length", "transfer-encoding", "content-encoding", "connection"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.content)))
            self.end_headers()
            self.wfile.write(answer.content)

        do_GET = do_POST = _relay  # noqa: N815 (http.server's naming)

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with stamina.set_testing(True, attempts=4):  # no sleeping between tries
            yield state
    finally:
        server.shutdown()
        server.server_close()
        upstream.close()


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "t"
    folder.mkdir()
    files = make_ticket()
    (folder / "ticket.json").write_text(json.dumps(files.manifest))
    (folder / "mask.safetensors").write_bytes(files.mask_bytes())
    return folder


def test_an_upload_is_sent_again_whole_after_a_bad_gateway(flaky: Flaky, live_api: LiveApi, tmp_path: Path) -> None:
    flaky.fail_next("POST", 502, 503)
    with Client(flaky.url, token=live_api.token, home=tmp_path / "h") as client:
        ticket = client.push(_folder(tmp_path))
    assert ticket.created is True
    assert [s for m, p, s in flaky.seen if m == "POST"] == [502, 503, 201]


def test_reads_and_downloads_ride_out_503_and_504(flaky: Flaky, live_api: LiveApi, tmp_path: Path) -> None:
    with Client(flaky.url, token=live_api.token, home=tmp_path / "h") as client:
        ticket = client.push(_folder(tmp_path))
        flaky.fail_next("GET", 503, 504)
        assert client.ticket(ticket.id).id == ticket.id
        assert [s for m, p, s in flaky.seen if m == "GET"] == [503, 504, 200]
        flaky.fail_next("GET", 503, 502, suffix="/mask")  # the streamed download itself
        out = client.download(ticket.id, tmp_path / "pulled", format="dense")
    assert (out / "mask.safetensors").read_bytes() == (tmp_path / "t" / "mask.safetensors").read_bytes()
    assert [s for m, p, s in flaky.seen if p.endswith("/mask")] == [503, 502, 200]


def test_a_write_that_is_not_idempotent_is_not_retried(flaky: Flaky, live_api: LiveApi, tmp_path: Path) -> None:
    flaky.fail_next("POST", 503)
    with Client(flaky.url, token=live_api.token, home=tmp_path / "h") as client:
        with pytest.raises(NirvanaError) as caught:
            client.cancel("00000000-0000-0000-0000-000000000000")
    assert caught.value.status == 503
    assert [s for m, p, s in flaky.seen if m == "POST"] == [503]


def test_the_server_s_last_answer_comes_through_when_the_tries_run_out(flaky: Flaky, tmp_path: Path) -> None:
    flaky.fail_next("GET", 503, 503, 503, 503, 503)
    with Client(flaky.url, home=tmp_path / "h") as client, pytest.raises(NirvanaError) as caught:
        client.tasks()
    assert caught.value.status == 503
    assert len(flaky.seen) == 4  # stamina's attempts in this test


def test_nothing_listening_is_tried_again_then_unreachable(free_port: int, tmp_path: Path) -> None:
    with stamina.set_testing(True, attempts=3), Client(f"http://127.0.0.1:{free_port}", home=tmp_path / "h") as client:
        with pytest.raises(ServerUnreachableError) as caught:
            client.tasks()
    assert f"127.0.0.1:{free_port}" in caught.value.detail

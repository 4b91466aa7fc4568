"""The client against the real API served by uvicorn: uploads, lists, downloads
through the digest cache (revalidate, resume, corruption, offline) and ``load``."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from db.session import make_engine, make_sessionmaker, unit_of_work
from db.tokens import create_token
from nirvana.lottery.tickets.manifest import parse_manifest, TicketFolder
from nirvana.lottery.tickets.files import load_tensors
from nirvana import Client
from nirvana.errors import (
    ConflictError,
    NirvanaError,
    RateLimitedError,
    ForbiddenError,
    DigestMismatchError,
    InvalidSafetensorsError,
    OfflineError,
    TicketFolderError,
    TicketNotFoundError,
    UnauthorizedError,
    WaitTimeoutError,
)
from tests.nirvana.conftest import LiveApi
from tests.support.datasets import write_idx_set
from tests.support.tickets import make_ticket


def write_folder(path: Path, **kwargs: object) -> Path:
    files = make_ticket(**kwargs)  # type: ignore[arg-type]
    path.mkdir(parents=True)
    (path / "ticket.json").write_text(json.dumps(files.manifest))
    (path / "mask.safetensors").write_bytes(files.mask_bytes())
    return path


@pytest.fixture
def client(live_api: LiveApi, tmp_path: Path) -> Iterator[Client]:
    with Client(url=live_api.url, token=live_api.token, home=tmp_path / "home") as client:
        yield client


def test_push_then_push_again_creates_one_ticket_with_a_queued_verification(client: Client, tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "t", density=0.25)
    first = client.push(folder)
    again = client.push(folder)
    assert first.created and not again.created and first.id == again.id
    assert [v.state for v in first.verifications] == ["queued"]
    assert client.ticket(first.id[:12]).id == first.id
    assert client.verification(first.verifications[0].id).state == "queued"
    assert client.latest_verification(first.short_id).id == first.verifications[0].id


def test_errors_come_back_as_their_classes(live_api: LiveApi, client: Client, tmp_path: Path) -> None:
    with pytest.raises(TicketNotFoundError):
        client.ticket("0" * 64)
    folder = write_folder(tmp_path / "t")
    with pytest.raises(UnauthorizedError) as caught, Client(url=live_api.url, token="nv_x", home=tmp_path / "o") as bad:
        bad.push(folder)
    assert caught.value.status == 401
    (folder / "mask.safetensors").write_bytes(b"\x80\x04not safetensors")
    with pytest.raises(InvalidSafetensorsError):
        client.push(folder)
    with pytest.raises(TicketFolderError):
        client.push(tmp_path)


def test_tickets_follows_the_cursor_across_pages(client: Client, tmp_path: Path) -> None:
    ids = {client.push(write_folder(tmp_path / f"t{i}", mask_seed=i)).id for i in range(3)}
    assert {t.id for t in client.tickets(task="digits", page_size=1)} == ids
    assert len(list(client.tickets(page_size=2, limit=2))) == 2
    assert list(client.tickets(task="mnist1d")) == []


def test_download_writes_a_folder_that_reads_back_and_checks_digests(client: Client, tmp_path: Path) -> None:
    ticket = client.push(write_folder(tmp_path / "t"))
    out = client.download(ticket.short_id, tmp_path / "pulled")
    manifest, mask, init = TicketFolder.read(out)
    original = parse_manifest((tmp_path / "t" / "ticket.json").read_bytes())
    assert (manifest.architecture, manifest.task, manifest.title) == (original.architecture, original.task, original.title)
    assert init is not None and set(mask) < set(init)
    for name in ("mask.safetensors", "init.safetensors"):
        digest = hashlib.sha256((out / name).read_bytes()).hexdigest()
        assert (client.cache.blobs / digest).is_file()
    # The pulled folder is the same ticket.
    assert client.push(out).id == ticket.id


def test_cached_blobs_are_revalidated_and_served_offline(client: Client, live_api: LiveApi, tmp_path: Path) -> None:
    ticket = client.push(write_folder(tmp_path / "t"))
    client.download(ticket.id, tmp_path / "a")
    before = {p.name: p.stat().st_mtime_ns for p in client.cache.blobs.iterdir()}
    client.download(ticket.id, tmp_path / "b")  # If-None-Match: 304, nothing rewritten
    assert {p.name: p.stat().st_mtime_ns for p in client.cache.blobs.iterdir()} == before

    with Client(url=live_api.url, home=client.home, offline=True) as offline:
        out = offline.download(ticket.short_id, tmp_path / "c")
        assert (out / "mask.safetensors").read_bytes() == (tmp_path / "a" / "mask.safetensors").read_bytes()
        with pytest.raises(OfflineError):
            offline.ticket("f" * 64)
        with pytest.raises(OfflineError):
            offline.tasks()


def _partial(client: Client, ticket_id: str, data: bytes, digest: str) -> Path:
    client.cache.write_ref(ticket_id, mask=digest)
    client.cache.blobs.mkdir(parents=True, exist_ok=True)
    part = client.cache.blobs / f"{digest}.part"
    part.write_bytes(data)
    return part


def test_an_interrupted_download_resumes(client: Client, tmp_path: Path) -> None:
    ticket = client.push(write_folder(tmp_path / "t"))
    mask = (client.download(ticket.id, tmp_path / "full", format="dense") / "mask.safetensors").read_bytes()
    digest = hashlib.sha256(mask).hexdigest()
    (client.cache.blobs / digest).unlink()
    part = _partial(client, ticket.id, mask[: len(mask) // 2], digest)
    out = client.download(ticket.id, tmp_path / "resumed", format="dense")
    assert (out / "mask.safetensors").read_bytes() == mask
    assert not part.exists()


def test_a_corrupt_download_is_refused_and_removed(client: Client, tmp_path: Path) -> None:
    ticket = client.push(write_folder(tmp_path / "t"))
    mask = (client.download(ticket.id, tmp_path / "full", format="dense") / "mask.safetensors").read_bytes()
    digest = hashlib.sha256(mask).hexdigest()
    (client.cache.blobs / digest).unlink()
    part = _partial(client, ticket.id, b"\0" * (len(mask) // 2), digest)  # wrong bytes, resumed
    with pytest.raises(DigestMismatchError):
        client.download(ticket.id, tmp_path / "bad", format="dense")
    assert not part.exists() and not (client.cache.blobs / digest).exists()
    out = client.download(ticket.id, tmp_path / "retry", format="dense")  # the next try starts afresh
    assert (out / "mask.safetensors").read_bytes() == mask


def test_load_builds_the_model_with_init_and_mask_applied(client: Client, tmp_path: Path) -> None:
    ticket = client.push(write_folder(tmp_path / "t", density=0.3))
    model, mask = client.load(ticket.short_id)
    init = load_tensors((client.download(ticket.id, tmp_path / "d") / "init.safetensors").read_bytes())
    for name, keep in mask.items():
        module_name, _, param = name.rpartition(".")
        module = model.get_submodule(module_name)
        assert keep.dtype == torch.bool
        assert torch.equal(getattr(module, f"{param}_orig").detach(), init[name])
        assert torch.equal(getattr(module, param).detach(), init[name] * keep)
    out = model(torch.zeros(2, 64))
    assert out.shape == (2, 10)


def test_wait_times_out_on_a_queued_job_and_returns_a_cancelled_one(client: Client, tmp_path: Path) -> None:
    ticket = client.push(write_folder(tmp_path / "t"))
    with pytest.raises(WaitTimeoutError):
        client.wait(ticket.short_id, timeout=0.5, poll_interval=0.1, progress=True)
    cancelled = client.cancel(ticket.verifications[0].id)
    assert cancelled.state == "cancelled"
    assert client.wait(str(cancelled.id), timeout=5, progress=False).state == "cancelled"


def test_verify_on_queues_a_transfer_with_a_verify_token(
    live_api: LiveApi, client: Client, tmp_path: Path
) -> None:
    write_idx_set(tmp_path / "data" / "mnist", n_train=20, n_test=10)  # the live API's data_dir
    ticket = client.push(write_folder(tmp_path / "t", architecture="lenet_16", task="fashion-mnist"))
    with pytest.raises(ForbiddenError):
        client.verify_on(ticket.id, task="mnist")  # the fixture's token has no verify scope
    engine = make_engine(live_api.database_url)
    with unit_of_work(make_sessionmaker(engine)) as session:
        _, secret = create_token(session, user_name="alice", token_name="verify", scopes=("read", "verify"))
    engine.dispose()
    with Client(url=live_api.url, token=secret, home=tmp_path / "v") as verifier:
        with pytest.raises(ConflictError) as own_task:
            verifier.verify_on(ticket.id, task="fashion-mnist")
        assert own_task.value.code == "same_task"
        recipe = {"optimizer": "sgd", "lr": 0.1, "batch_size": 32, "steps": 10}
        queued = verifier.verify_on(ticket.id, task="mnist", recipe=recipe)
    assert (queued.task, queued.state, queued.recipe["optimizer"]) == ("mnist", "queued", "sgd")
    assert len(client.ticket(ticket.id).verifications) == 2


def test_a_malicious_ticket_id_from_the_server_never_names_a_file(tmp_path: Path) -> None:
    """A server (or a man in the middle) answering an id like ``../../x`` must not make
    the client write outside its cache or the current folder."""
    import http.server
    import threading

    class Evil(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            body = json.dumps({"id": "../../../escaped", "short_id": "/tmp/escaped", "task": "digits"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Evil)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        home = tmp_path / "home"
        with Client(url=f"http://127.0.0.1:{server.server_address[1]}", home=home) as client:
            with pytest.raises(NirvanaError) as caught:
                client.ticket("ab" * 6)
        assert caught.value.code == "bad_response"
        assert not (tmp_path / "escaped.json").exists()
        assert not any(p.name.startswith("escaped") for p in tmp_path.rglob("*"))
    finally:
        server.shutdown()
        server.server_close()


def test_reads_wait_out_a_short_rate_limit_and_writes_do_not(tmp_path: Path) -> None:
    """A real server that limits the first requests: the client's GET waits as
    ``Retry-After`` says and succeeds; a POST gets the 429 as an error."""
    import http.server
    import threading
    import time

    calls: list[float] = []

    class Limited(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            calls.append(time.monotonic())
            limited = len(calls) in (1, 3)
            body = json.dumps({"code": "rate_limited", "status": 429, "detail": "slow down"} if limited else {"status": "ok"})
            self.send_response(429 if limited else 200)
            self.send_header("Content-Type", "application/problem+json" if limited else "application/json")
            if limited:
                self.send_header("Retry-After", "1")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        do_GET = do_POST = _answer  # noqa: N815 (http.server's naming)

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Limited)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with Client(url=f"http://127.0.0.1:{server.server_address[1]}", token="nv_x", home=tmp_path / "h") as client:
            assert client.health() == {"status": "ok"}
            assert len(calls) == 2 and calls[1] - calls[0] >= 0.9
            with pytest.raises(RateLimitedError) as caught:
                client.cancel("00000000-0000-0000-0000-000000000000")
            assert caught.value.retry_after == 1.0 and len(calls) == 3
    finally:
        server.shutdown()
        server.server_close()


def test_verify_again_after_a_cancel_and_not_while_one_is_pending(live_api: LiveApi, client: Client, tmp_path: Path) -> None:
    ticket = client.push(write_folder(tmp_path / "t"))
    with pytest.raises(ConflictError) as pending:
        client.verify_again(ticket.short_id)
    assert pending.value.code == "same_task"
    first = client.cancel(ticket.verifications[0].id)
    again = client.verify_again(ticket.short_id)
    assert (again.state, again.task) == ("queued", ticket.task)
    engine = make_engine(live_api.database_url)
    with unit_of_work(make_sessionmaker(engine)) as session:
        _, secret = create_token(session, user_name="mallory", token_name="w", scopes=("read", "write"))
    engine.dispose()
    with Client(url=live_api.url, token=secret, home=tmp_path / "m") as stranger:
        with pytest.raises(ForbiddenError) as refused:
            stranger.cancel(str(again.id))
    assert refused.value.code == "not_owner"
    assert [v.id for v in client.ticket(ticket.id).verifications] == [first.id, again.id]

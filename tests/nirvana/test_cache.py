"""The client's cache of its own (``NIRVANA_CACHE``), against the real API: blobs are
re-hashed when read, a corrupt one is fetched again, ``force_download`` fetches anyway,
and ``nirvana cache ls | verify | rm | prune`` look after it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nirvana import Client
from nirvana.cli import app
from nirvana.errors import DigestMismatchError
from tests.nirvana.conftest import LiveApi
from tests.support.tickets import make_ticket


@pytest.fixture
def client(live_api: LiveApi, tmp_path: Path) -> Iterator[Client]:
    with Client(live_api.url, token=live_api.token, home=tmp_path / "home") as client:
        yield client


def _push(client: Client, folder: Path, **kwargs: object) -> str:
    folder.mkdir()
    files = make_ticket(**kwargs)  # type: ignore[arg-type]
    (folder / "ticket.json").write_text(json.dumps(files.manifest))
    (folder / "mask.safetensors").write_bytes(files.mask_bytes())
    return client.push(folder).id


def _mask_blob(client: Client, ticket_id: str) -> Path:
    return client.cache.blob(client.cache.read_ref(ticket_id)["blobs"]["mask"])


def test_the_cache_is_apart_from_the_home_and_follows_nirvana_cache(client: Client, client_cache: Path, tmp_path: Path) -> None:
    ticket = _push(client, tmp_path / "t")
    client.download(ticket, tmp_path / "a", format="dense")
    assert client.cache.root == client_cache and _mask_blob(client, ticket).is_relative_to(client_cache)
    assert not (tmp_path / "home" / "cache").exists()


def test_a_corrupted_blob_is_detected_when_read_and_fetched_again(client: Client, live_api: LiveApi, tmp_path: Path) -> None:
    ticket = _push(client, tmp_path / "t")
    client.download(ticket, tmp_path / "a", format="dense")
    blob = _mask_blob(client, ticket)
    good = blob.read_bytes()
    blob.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))  # one bit of rot
    with Client(live_api.url, home=tmp_path / "home", offline=True) as offline:
        with pytest.raises(DigestMismatchError):
            offline.download(ticket, tmp_path / "offline", format="dense")
    out = client.download(ticket, tmp_path / "b", format="dense")
    assert (out / "mask.safetensors").read_bytes() == good and blob.read_bytes() == good


def test_force_download_fetches_what_the_cache_holds(client: Client, tmp_path: Path) -> None:
    ticket = _push(client, tmp_path / "t")
    client.download(ticket, tmp_path / "a", format="dense")
    blob = _mask_blob(client, ticket)
    before = blob.stat().st_ino, blob.stat().st_mtime_ns
    client.download(ticket, tmp_path / "b", format="dense")  # revalidated: 304, the file untouched
    assert (blob.stat().st_ino, blob.stat().st_mtime_ns) == before
    client.download(ticket, tmp_path / "c", force_download=True, format="dense")
    assert (blob.stat().st_ino, blob.stat().st_mtime_ns) != before  # written afresh
    assert blob.read_bytes() == (tmp_path / "t" / "mask.safetensors").read_bytes()


def test_cache_ls_verify_rm_prune(client: Client, tmp_path: Path) -> None:
    runner = CliRunner()
    first = _push(client, tmp_path / "t1", title="the first of two")
    second = _push(client, tmp_path / "t2", mask_seed=1)
    client.download(first, tmp_path / "a", format="dense")
    client.download(second, tmp_path / "b", format="dense")

    listed = runner.invoke(app, ["cache", "ls"])
    assert listed.exit_code == 0, listed.output
    assert first[:12] in listed.stdout and second[:12] in listed.stdout and "the first of two" in listed.stdout

    assert runner.invoke(app, ["cache", "verify"]).exit_code == 0
    _mask_blob(client, second).write_bytes(b"rotten")
    checked = runner.invoke(app, ["cache", "verify"])
    assert checked.exit_code == 1 and "corrupt, removed" in checked.stdout
    assert not _mask_blob(client, second).exists()
    assert "missing mask" in runner.invoke(app, ["cache", "ls"]).stdout

    first_blobs = [client.cache.blob(d) for d in client.cache.read_ref(first)["blobs"].values()]
    # A blob another ticket also names must stay: make the second ticket name one.
    client.cache.write_ref(second, shared=first_blobs[0].name)
    removed = runner.invoke(app, ["cache", "rm", first[:12]])
    assert removed.exit_code == 0 and "removed" in removed.stdout
    still_named = set(client.cache.read_ref(second)["blobs"].values())
    assert first_blobs[0].exists()
    assert all(p.exists() == (p.name in still_named) for p in first_blobs)
    assert first[:12] not in runner.invoke(app, ["cache", "ls"]).stdout
    unknown = runner.invoke(app, ["cache", "rm", "f" * 12])
    assert unknown.exit_code == 1 and "(not_cached)" in unknown.stderr

    stray = client.cache.blobs / f"{'e' * 64}.part"
    stray.write_bytes(b"half of a forgotten download")
    init = client.cache.blob(client.cache.read_ref(second)["blobs"]["init"])
    pruned = runner.invoke(app, ["cache", "prune"])
    assert pruned.exit_code == 0 and "pruned 1 files" in pruned.stdout
    assert not stray.exists() and init.exists()  # a named blob stays

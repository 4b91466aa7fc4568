"""``nirvana data fetch`` and ``nirvana data ls`` against a local HTTP server serving
fixture files (with ``Range``): checksums, resumption, CIFAR-10's unpacking, and the
task then loading from where the files went."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import json
import re
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from db.session import make_engine, make_sessionmaker, unit_of_work
from db.tokens import create_token
from nirvana import Client
from nirvana.cli import app
from nirvana.datasets import CIFAR_MEMBERS, DATASETS, ChecksumMismatchError, Dataset, fetch
from nirvana.errors import NirvanaError
from nirvana.paths import default_data_dir
from nirvana.lottery.data.tasks import is_available, load_task
from nirvana.lottery.errors import TaskUnavailableError
from tests.nirvana.conftest import LiveApi
from tests.support.datasets import IDX_STEMS, write_idx_set
from tests.support.tickets import make_ticket


@dataclass
class Files:
    """What the server serves, what it saw, and how many bytes it cuts a body to."""

    url: str = ""
    content: dict[str, bytes] = field(default_factory=dict)
    ranges: list[str | None] = field(default_factory=list)
    cut_next_at: int | None = None


@pytest.fixture
def files() -> Iterator[Files]:
    state = Files()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            data = state.content.get(self.path.lstrip("/"))
            state.ranges.append(self.headers.get("Range"))
            if data is None:
                self.send_error(404)
                return
            start = 0
            match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
            if match:
                start = int(match.group(1))
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if state.cut_next_at is not None:  # a dropped connection mid-body
                self.wfile.write(body[: state.cut_next_at])
                state.cut_next_at = None
                self.close_connection = True
                return
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def _idx_fixture(tmp_path: Path, files: Files) -> Dataset:
    """Small Fashion-MNIST-shaped files served as the real names, with their own MD5s."""
    write_idx_set(tmp_path / "fixture", 6, 3, gz=True)
    for stem in IDX_STEMS:
        files.content[f"{stem}.gz"] = (tmp_path / "fixture" / f"{stem}.gz").read_bytes()
    md5 = {name: hashlib.md5(data, usedforsecurity=False).hexdigest() for name, data in files.content.items()}
    return Dataset(task="fashion-mnist", base_url=files.url, md5=md5, homepage="")


def test_fetch_puts_checked_files_where_the_task_reads_them(tmp_path: Path, files: Files) -> None:
    spec = _idx_fixture(tmp_path, files)
    data = tmp_path / "data"
    folder = fetch(spec, data)
    assert folder == data / "fashion-mnist"
    assert sorted(p.name for p in folder.iterdir()) == sorted(spec.md5)
    assert is_available("fashion-mnist", data_dir=data)
    served = len(files.ranges)
    fetch(spec, data)  # everything is there and matches: nothing is asked again
    assert len(files.ranges) == served


def test_an_interrupted_download_resumes_with_range(tmp_path: Path, files: Files) -> None:
    spec = _idx_fixture(tmp_path, files)
    first = next(iter(spec.md5))
    files.cut_next_at = 100
    with pytest.raises(NirvanaError) as caught:
        fetch(spec, tmp_path / "data")
    assert caught.value.code == "download_failed"
    part = tmp_path / "data" / "fashion-mnist" / f"{first}.part"
    assert part.stat().st_size == 100
    fetch(spec, tmp_path / "data")
    assert "bytes=100-" in files.ranges and not part.exists()
    assert (tmp_path / "data" / "fashion-mnist" / first).read_bytes() == files.content[first]


def test_a_wrong_checksum_is_refused_and_leaves_no_file(tmp_path: Path, files: Files) -> None:
    _idx_fixture(tmp_path, files)  # served under the real names, but not the published bytes
    data = tmp_path / "data"
    result = CliRunner().invoke(app, ["data", "fetch", "fashion-mnist", "--data-dir", str(data), "--base-url", files.url])
    assert result.exit_code == 1
    assert "(checksum_mismatch)" in result.stderr and DATASETS["fashion-mnist"].md5["train-images-idx3-ubyte.gz"] in result.stderr
    assert [p.name for p in (data / "fashion-mnist").iterdir()] == []
    with pytest.raises(ChecksumMismatchError):
        fetch("fashion-mnist", data, base_url=files.url)


def test_cifar10_is_unpacked_member_by_member(tmp_path: Path, files: Files) -> None:
    buffer = io.BytesIO()
    rng = np.random.default_rng(0)
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for member in (*CIFAR_MEMBERS, "cifar-10-batches-bin/../../escape.bin"):
            labels = rng.integers(0, 10, (4, 1), dtype=np.uint8)
            record = np.concatenate([labels, rng.integers(0, 256, (4, 3072), dtype=np.uint8)], axis=1).tobytes()
            info = tarfile.TarInfo(member)
            info.size = len(record)
            tar.addfile(info, io.BytesIO(record))
    files.content["cifar-10-binary.tar.gz"] = buffer.getvalue()
    md5 = {"cifar-10-binary.tar.gz": hashlib.md5(buffer.getvalue(), usedforsecurity=False).hexdigest()}
    folder = fetch(Dataset(task="cifar10", base_url=files.url, md5=md5, homepage=""), tmp_path / "data")
    assert sorted(p.name for p in (folder / "cifar-10-batches-bin").iterdir()) == sorted(Path(m).name for m in CIFAR_MEMBERS)
    assert not (folder / "cifar-10-binary.tar.gz").exists() and not (tmp_path / "escape.bin").exists()
    assert is_available("cifar10", data_dir=tmp_path / "data")


def test_data_ls_and_the_default_data_dir(tmp_path: Path, files: Files, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NIRVANA_DATA_DIR", raising=False)
    monkeypatch.setenv("NIRVANA_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    before = runner.invoke(app, ["data", "ls"])
    assert before.exit_code == 0 and "nirvana data fetch mnist" in before.stdout
    assert str(tmp_path / "home" / "data" / "mnist") in before.stdout
    # MNIST's fixture has the right shape: fetched into $NIRVANA_HOME/data, the task finds it.
    write_idx_set(tmp_path / "mnist", 6, 3, gz=False)
    for stem in IDX_STEMS:
        files.content[f"{stem}.gz"] = gzip.compress((tmp_path / "mnist" / stem).read_bytes())
    md5 = {name: hashlib.md5(data, usedforsecurity=False).hexdigest() for name, data in files.content.items()}
    fetch(Dataset(task="mnist", base_url=files.url, md5=md5, homepage=""), tmp_path / "home" / "data")
    assert is_available("mnist", data_dir=default_data_dir())
    after = runner.invoke(app, ["data", "ls"])
    assert re.search(r"^mnist\s+yes\s", after.stdout, re.M), after.stdout


def test_an_unknown_dataset_names_the_known_ones(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["data", "fetch", "imagenet", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1 and "fashion-mnist, mnist, cifar10" in result.stderr


@pytest.fixture
def no_task_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty data directory, set before the server (in this process) reads its settings."""
    monkeypatch.setenv("NIRVANA_DATA_DIR", str(tmp_path / "empty"))


def test_a_missing_task_names_the_command_on_the_pages_and_in_errors(
    no_task_data: None, live_api: LiveApi, tmp_path: Path
) -> None:
    page = httpx.get(f"{live_api.url}/", timeout=30).text
    assert "nirvana data fetch cifar10" in page and "nirvana data fetch mnist" in page
    folder = tmp_path / "t"
    folder.mkdir()
    files = make_ticket(architecture="lenet_16", task="fashion-mnist")
    (folder / "ticket.json").write_text(json.dumps(files.manifest))
    (folder / "mask.safetensors").write_bytes(files.mask_bytes())
    engine = make_engine(live_api.database_url)
    with unit_of_work(make_sessionmaker(engine)) as session:
        _, verifier = create_token(session, user_name="alice", token_name="verify", scopes=("read", "write", "verify"))
    engine.dispose()
    with Client(live_api.url, token=verifier, home=tmp_path / "h") as client:
        ticket = client.push(folder)
        with pytest.raises(NirvanaError) as caught:
            client.verify_on(ticket.id, task="mnist", recipe={"optimizer": "sgd", "lr": 0.1, "batch_size": 32, "steps": 10})
    assert "nirvana data fetch mnist" in caught.value.detail
    with pytest.raises(TaskUnavailableError) as local:
        load_task("cifar10")  # what `nirvana find` and a worker meet
    assert "nirvana data fetch cifar10" in str(local.value)

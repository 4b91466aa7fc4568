from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from nirvana.lottery.errors import InvalidDatasetError, TaskUnavailableError, UnknownTaskError
from nirvana.lottery.data.idx import IdxSource, parse_idx
from nirvana.lottery.data.tasks import get_task, is_available, list_tasks, load_task
from tests.support.datasets import idx_bytes, write_idx_set

FASHION = Path("/usr/share/datasets/fashion-mnist")


def test_parse_idx_round_trips_ubyte_and_big_endian_ints() -> None:
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    assert np.array_equal(parse_idx(idx_bytes(images)), images)
    ints = np.array([1, -2, 70000], dtype=np.int32)
    out = parse_idx(idx_bytes(ints, code=0x0C))
    assert out.tolist() == [1, -2, 70000]


@pytest.mark.parametrize(
    "data, fragment",
    [
        (b"\x00\x00", "too short"),
        (b"\x01\x00\x08\x01" + (3).to_bytes(4, "big") + b"abc", "magic"),
        (b"\x00\x00\x42\x01" + (3).to_bytes(4, "big") + b"abc", "magic"),
        (b"\x00\x00\x08\x00", "dimensions"),
        (b"\x00\x00\x08\x02" + (3).to_bytes(4, "big"), "truncated"),
        (b"\x00\x00\x08\x01" + (5).to_bytes(4, "big") + b"abc", "need 5"),
        (b"\x00\x00\x08\x01" + (2).to_bytes(4, "big") + b"abc", "need 2"),
    ],
)
def test_parse_idx_rejects_malformed(data: bytes, fragment: str) -> None:
    with pytest.raises(InvalidDatasetError, match=fragment) as info:
        parse_idx(data)
    assert info.value.code == "invalid_dataset"


@pytest.mark.parametrize("gz", [True, False])
def test_idx_source_loads_gz_and_plain(tmp_path: Path, gz: bool) -> None:
    write_idx_set(tmp_path / "toy", 7, 3, gz=gz)
    source = IdxSource(subdir="toy", default_dir=tmp_path / "nowhere")
    folder = source.find([tmp_path / "toy"])
    x_tr, y_tr, x_te, y_te = source.load(folder)
    assert x_tr.shape == (7, 28, 28) and x_te.shape == (3, 28, 28)
    assert x_tr.dtype == np.float32 and 0.0 <= x_tr.min() and x_tr.max() <= 1.0
    assert y_tr.dtype == np.int64 and y_te.shape == (3,)


def test_idx_source_reports_missing_and_corrupt(tmp_path: Path) -> None:
    source = IdxSource(subdir="toy", default_dir=tmp_path / "nowhere")
    assert source.find_or_none([tmp_path]) is None
    with pytest.raises(TaskUnavailableError, match="not found"):
        source.find([tmp_path])
    write_idx_set(tmp_path / "toy", 4, 2, gz=False)
    (tmp_path / "toy" / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01" + (9).to_bytes(4, "big"))
    with pytest.raises(InvalidDatasetError):
        source.load(tmp_path / "toy")


def test_fashion_mnist_reads_data_dir_argument(tmp_path: Path) -> None:
    # Wrong sizes on purpose: proves the file is read from data_dir and checked.
    write_idx_set(tmp_path / "fashion-mnist", 5, 2, gz=True)
    assert is_available("fashion-mnist", data_dir=tmp_path)
    with pytest.raises(TaskUnavailableError, match="expected 60000/10000"):
        load_task("fashion-mnist", data_dir=tmp_path)


def test_absent_mnist(tmp_path: Path) -> None:
    assert is_available("mnist", data_dir=tmp_path) is False
    with pytest.raises(TaskUnavailableError) as info:
        load_task("mnist", data_dir=tmp_path)
    assert info.value.code == "task_unavailable"


def test_a_data_dir_without_the_task_falls_back_to_the_system_folder(tmp_path: Path) -> None:
    # Debian's dataset-fashion-mnist (installed by `make test`) is found after data_dir.
    assert is_available("fashion-mnist", data_dir=tmp_path)


def test_digits_split() -> None:
    data = load_task("digits")
    assert data.x_train.shape == (1500, 1, 8, 8) and data.x_test.shape == (297, 1, 8, 8)
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64
    assert float(data.x_train.max()) == 1.0 and float(data.x_train.min()) == 0.0
    assert set(data.y_test.tolist()) == set(range(10))
    assert len(data.fingerprint) == 64
    assert load_task("digits") is data  # cached per process


def test_mnist1d_split() -> None:
    data = load_task("mnist1d")
    spec = get_task("mnist1d")
    assert data.x_train.shape == (4000, 40) and data.x_test.shape == (1000, 40)
    assert (spec.train_size, spec.test_size, spec.input_shape) == (4000, 1000, (40,))
    assert data.y_train.dtype == torch.int64 and int(data.y_train.max()) == 9


@pytest.mark.skipif(not FASHION.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_sizes() -> None:
    assert is_available("fashion-mnist")
    data = load_task("fashion-mnist")
    assert data.x_train.shape == (60000, 1, 28, 28) and data.x_test.shape == (10000, 1, 28, 28)
    assert float(data.x_train.max()) == 1.0
    assert torch.bincount(data.y_test).tolist() == [1000] * 10


def test_unknown_task() -> None:
    with pytest.raises(UnknownTaskError) as info:
        get_task("imagenet-22k")
    assert info.value.code == "unknown_task"
    with pytest.raises(UnknownTaskError):
        load_task("nope")


def test_list_tasks_and_recipes() -> None:
    specs = {t.name: t for t in list_tasks()}
    assert {"digits", "mnist1d", "fashion-mnist"} <= set(specs)
    fm = specs["fashion-mnist"].default_recipe
    assert (fm.optimizer, fm.lr, fm.batch_size, fm.steps) == ("adam", 1.2e-3, 60, 5000)
    m1 = specs["mnist1d"].default_recipe
    assert (m1.lr, m1.batch_size, m1.steps) == (2e-2, 100, 1501)


def test_the_data_dir_argument_is_the_one_place_looked_at(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_idx_set(tmp_path / "fashion-mnist", 3, 1, gz=False)
    with pytest.raises(TaskUnavailableError, match="expected"):
        load_task("fashion-mnist", data_dir=tmp_path)
    # The core reads no environment variable: NIRVANA_DATA_DIR is the CLI's and the server's.
    monkeypatch.setenv("NIRVANA_DATA_DIR", os.fspath(tmp_path / "elsewhere"))
    with pytest.raises(TaskUnavailableError, match="expected"):
        load_task("fashion-mnist", data_dir=tmp_path)


def test_loose_files_in_the_data_dir_are_no_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # MNIST and Fashion-MNIST share file names: files lying loose in the data directory
    # could be either, so neither task takes them.
    write_idx_set(tmp_path, 3, 1, gz=False)
    assert not is_available("mnist", data_dir=tmp_path)

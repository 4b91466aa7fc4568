"""mnist (IDX) and cifar10 (binary batches) on small synthetic files."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from nirvana.lottery.data import tasks
from nirvana.lottery.data.cifar import ARCHIVE_DIR, OPENLTH_MEAN, OPENLTH_STD, RECORD, CifarSource, parse_records
from nirvana.lottery.errors import InvalidDatasetError, TaskUnavailableError
from nirvana.lottery.data.tasks import get_task, is_available, load_task
from tests.support.datasets import write_idx_set

BATCHES = [f"data_batch_{i}.bin" for i in range(1, 6)]


def cifar_bytes(labels: list[int], seed: int) -> bytes:
    """Records as the official files hold them: label byte, then R, G, B planes."""
    rng = np.random.default_rng(seed)
    rows = [bytes([label]) + rng.integers(0, 256, 3072, dtype=np.uint8).tobytes() for label in labels]
    return b"".join(rows)


def write_cifar(folder: Path, per_batch: int = 2, n_test: int = 3) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(BATCHES):
        (folder / name).write_bytes(cifar_bytes([(i + j) % 10 for j in range(per_batch)], seed=i))
    (folder / "test_batch.bin").write_bytes(cifar_bytes([9] * n_test, seed=99))


@pytest.fixture
def small_sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let load_task accept the synthetic files: only the split sizes change."""
    for name, sizes in {"cifar10": (10, 3), "mnist": (6, 2)}.items():
        entry = tasks._TASKS[name]
        spec = replace(entry.spec, train_size=sizes[0], test_size=sizes[1])
        monkeypatch.setitem(tasks._TASKS, name, replace(entry, spec=spec))


def test_specs() -> None:
    cifar, mnist = get_task("cifar10"), get_task("mnist")
    assert (cifar.input_shape, cifar.num_classes, cifar.train_size, cifar.test_size) == ((3, 32, 32), 10, 50000, 10000)
    assert (mnist.input_shape, mnist.train_size, mnist.test_size) == ((1, 28, 28), 60000, 10000)
    r = cifar.default_recipe
    assert (r.optimizer, r.lr, r.batch_size, r.steps) == ("adam", 3e-4, 60, 25000)  # LTH Conv-4
    r = mnist.default_recipe
    assert (r.optimizer, r.lr, r.batch_size, r.steps) == ("adam", 1.2e-3, 60, 50000)  # LTH LeNet


def test_parse_records_layout() -> None:
    data = cifar_bytes([3, 7], seed=0)
    images, labels = parse_records(data)
    assert images.shape == (2, 3, 32, 32) and labels.tolist() == [3, 7]
    raw = np.frombuffer(data, dtype=np.uint8)
    # Second record, green plane, row 1, column 2.
    assert images[1, 1, 1, 2] == raw[RECORD + 1 + 1024 + 32 + 2]


@pytest.mark.parametrize(
    "data, fragment",
    [(b"", "whole number"), (b"\x01" * (RECORD + 1), "whole number"), (bytes([10]) + bytes(3072), "label 10")],
)
def test_parse_records_rejects_malformed(data: bytes, fragment: str) -> None:
    with pytest.raises(InvalidDatasetError, match=fragment):
        parse_records(data)


@pytest.mark.parametrize("nested", [True, False])
def test_cifar10_load_task(tmp_path: Path, small_sizes: None, nested: bool) -> None:
    root = tmp_path / "cifar10"
    write_cifar(root / ARCHIVE_DIR if nested else root)
    assert is_available("cifar10", data_dir=tmp_path)
    data = load_task("cifar10", data_dir=tmp_path)
    assert data.x_train.shape == (10, 3, 32, 32) and data.x_test.shape == (3, 3, 32, 32)
    assert data.y_train.tolist() == [0, 1, 1, 2, 2, 3, 3, 4, 4, 5]  # batches 1..5 in order
    assert data.y_test.dtype == torch.int64 and data.y_test.tolist() == [9, 9, 9]
    images, _ = parse_records((root / (ARCHIVE_DIR if nested else "") / "test_batch.bin").read_bytes())
    mean = torch.tensor(OPENLTH_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(OPENLTH_STD).view(1, 3, 1, 1)
    expected = (torch.from_numpy(images).float() / 255 - mean) / std
    assert torch.allclose(data.x_test, expected, atol=1e-6)


def test_cifar10_official_sizes_checked(tmp_path: Path) -> None:
    write_cifar(tmp_path / "cifar10")
    with pytest.raises(InvalidDatasetError, match="expected 50000/10000"):
        load_task("cifar10", data_dir=tmp_path)


def test_cifar10_unnormalised_source(tmp_path: Path) -> None:
    write_cifar(tmp_path)
    x_tr, _, _, _ = CifarSource("cifar10", tmp_path / "nowhere").load(tmp_path)
    assert x_tr.dtype == np.float32 and x_tr.min() >= 0 and x_tr.max() <= 1


def test_cifar10_absent_or_python_version(tmp_path: Path) -> None:
    assert not is_available("cifar10", data_dir=tmp_path)
    # The pickled "python version" has the same names without .bin: never read.
    pickled = tmp_path / "cifar10" / "cifar-10-batches-py"
    pickled.mkdir(parents=True)
    for name in [*BATCHES, "test_batch.bin"]:
        (pickled / name.removesuffix(".bin")).write_bytes(b"\x80\x04")
    assert not is_available("cifar10", data_dir=tmp_path)
    with pytest.raises(TaskUnavailableError) as info:
        load_task("cifar10", data_dir=tmp_path)
    assert info.value.code == "task_unavailable"
    assert "cifar-10-binary.tar.gz" in info.value.detail and "$NIRVANA_DATA_DIR/cifar10" in info.value.detail


def test_cifar10_truncated_file(tmp_path: Path) -> None:
    write_cifar(tmp_path / "cifar10")
    (tmp_path / "cifar10" / "data_batch_3.bin").write_bytes(cifar_bytes([1], seed=0)[:-5])
    with pytest.raises(InvalidDatasetError, match="data_batch_3.bin"):
        load_task("cifar10", data_dir=tmp_path)


def test_mnist_load_task(tmp_path: Path, small_sizes: None) -> None:
    write_idx_set(tmp_path / "mnist", 6, 2)
    assert is_available("mnist", data_dir=tmp_path)
    data = load_task("mnist", data_dir=tmp_path)
    assert data.x_train.shape == (6, 1, 28, 28) and data.x_test.shape == (2, 1, 28, 28)
    assert 0.0 <= float(data.x_train.min()) and float(data.x_train.max()) <= 1.0


def test_mnist_absent(tmp_path: Path) -> None:
    assert not is_available("mnist", data_dir=tmp_path)
    with pytest.raises(TaskUnavailableError) as info:
        load_task("mnist", data_dir=tmp_path)
    assert "$NIRVANA_DATA_DIR/mnist" in info.value.detail

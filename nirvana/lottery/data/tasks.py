"""Tasks: datasets with a fixed train/test split, a metric and a default recipe.

Nothing here downloads: ``digits`` ships with scikit-learn, ``mnist1d`` is generated
by its package (both of the ``data`` extra, imported only when the task loads), ``mnist`` and ``fashion-mnist`` are read from IDX files on disk
(``nirvana.lottery.data.idx``), ``cifar10`` from the binary batches (``nirvana.lottery.data.cifar``). Adding a
dataset kept in files is one ``_register(_file_entry(spec, source))`` call.
Loaded data is cached per process on the CPU; ``load_task`` copies it to the device.

Validation split: every task holds ``validation_size`` examples of its training set out
of training (Frankle & Carbin hold out 5,000 of MNIST's 60,000), for early stopping.
The held-out examples are every ``k``-th one, ``k = train_size // validation_size``:
indices ``k-1, 2k-1, ...`` (``validation_size`` of them), so the split is fixed by the
files alone and spread over the whole file order. ``TaskData.x_train`` is what remains.

=================  ==========  ===============  ==========
task               train_size  validation_size  trained on
=================  ==========  ===============  ==========
digits             1,500       300              1,200
mnist1d            4,000       500              3,500
mnist              60,000      5,000            55,000
fashion-mnist      60,000      5,000            55,000
cifar10            50,000      5,000            45,000
=================  ==========  ===============  ==========
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Protocol

import numpy as np
import torch

from nirvana.lottery.data.cifar import OPENLTH_MEAN, OPENLTH_STD, CifarSource
from nirvana.lottery.tickets.digests import tensors_digest
from nirvana.lottery.errors import InvalidDatasetError, MissingExtraError, UnknownTaskError
from nirvana.lottery.data.idx import IdxSource
from nirvana.lottery.training.recipes import Recipe

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True, kw_only=True)
class TaskSpec:
    """What a task is: shapes (no batch dim), split sizes, metric, default recipe.

    ``train_size`` counts the dataset's whole training split (what its files hold);
    ``validation_size`` of those are held out (see the module docstring)."""

    name: str
    input_shape: tuple[int, ...]
    num_classes: int
    train_size: int
    test_size: int
    validation_size: int = 0
    metric: str = "accuracy"
    default_recipe: Recipe
    description: str


@dataclass(frozen=True)
class TaskData:
    """A task's tensors: ``x`` float32 shaped ``(N, *input_shape)``, ``y`` int64 labels.

    ``x_train`` holds the training examples that train (``train_size -
    validation_size``), ``x_val`` the held-out validation examples, ``x_test`` the test set.
    ``fingerprint`` is ``nirvana.lottery.tickets.digests.tensors_digest`` of the files'
    ``{x_train, y_train, x_test, y_test}`` before the validation split: the same bytes
    give the same fingerprint.
    """

    spec: TaskSpec
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    fingerprint: str
    x_val: torch.Tensor
    y_val: torch.Tensor

    def with_inputs(self, select: Callable[[torch.Tensor], torch.Tensor]) -> TaskData:
        """The same task with ``select`` applied once to each split's inputs (e.g. a
        compact model's ``select_inputs``: the features it reads, gathered once
        instead of from every batch); labels and fingerprint unchanged."""
        return replace(
            self, x_train=select(self.x_train), x_val=select(self.x_val), x_test=select(self.x_test)
        )


@dataclass(frozen=True)
class _Entry:
    spec: TaskSpec
    load: Callable[[Path | None], Arrays]
    available: Callable[[Path | None], bool]
    cache_key: Callable[[Path | None], str]


_TASKS: dict[str, _Entry] = {}
_CACHE: dict[tuple[str, str], TaskData] = {}
_LOCK = threading.Lock()


def _register(entry: _Entry) -> None:
    _TASKS[entry.spec.name] = entry


# ---------------------------------------------------------------------------- loaders


def _import_extra(module: str, *, task: str, package: str) -> ModuleType:
    """``module`` of the ``data`` extra, imported only when a task needs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(f"the {task} task", package, "data") from None


def _has_module(module: str) -> Callable[[Path | None], bool]:
    def available(_: Path | None) -> bool:
        try:
            return importlib.util.find_spec(module) is not None
        except ImportError:  # a parent package that is missing or blocked
            return False

    return available


def _load_digits(_: Path | None) -> Arrays:
    load_digits = _import_extra("sklearn.datasets", task="digits", package="scikit-learn").load_digits

    bunch = load_digits()
    x = (bunch.data.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    y = bunch.target.astype(np.int64)
    # A fixed split by position: sklearn's order is stable across releases.
    return x[:1500], y[:1500], x[1500:], y[1500:]


def _load_mnist1d(_: Path | None) -> Arrays:
    mnist1d = _import_extra("mnist1d.data", task="mnist1d", package="mnist1d")
    d = mnist1d.make_dataset(mnist1d.get_dataset_args())  # default args: seed 42, 4,000 / 1,000
    return (
        np.asarray(d["x"], dtype=np.float32),
        np.asarray(d["y"], dtype=np.int64),
        np.asarray(d["x_test"], dtype=np.float32),
        np.asarray(d["y_test"], dtype=np.int64),
    )


def _no_dir(_: Path | None) -> str:
    return ""


class DataSource(Protocol):
    """Files of a dataset under a data directory (``IdxSource``, ``CifarSource``)."""

    @property
    def subdir(self) -> str: ...
    @property
    def default_dir(self) -> Path: ...
    def find_or_none(self, candidates: list[Path]) -> Path | None: ...
    def find(self, candidates: list[Path]) -> Path: ...
    def load(self, folder: Path) -> Arrays: ...


def _file_entry(spec: TaskSpec, source: DataSource) -> _Entry:
    def load(data_dir: Path | None) -> Arrays:
        return source.load(source.find(_candidates(source.subdir, data_dir, source.default_dir)))

    def available(data_dir: Path | None) -> bool:
        return source.find_or_none(_candidates(source.subdir, data_dir, source.default_dir)) is not None

    def key(data_dir: Path | None) -> str:
        return str(source.find(_candidates(source.subdir, data_dir, source.default_dir)))

    return _Entry(spec=spec, load=load, available=available, cache_key=key)


def _candidates(subdir: str, data_dir: Path | None, default: Path) -> list[Path]:
    """Folders to look in, in order: ``data_dir/subdir`` when ``data_dir`` is given
    (the server's settings and the CLI pass ``nirvana.paths.default_data_dir()``, where
    ``nirvana data fetch`` puts the files), then the system ``default`` (e.g. Debian's
    ``/usr/share/datasets``). The core reads no environment variable.

    Never the data directory itself: MNIST and Fashion-MNIST files have the same names,
    so files lying loose there could be served as either task."""
    return ([Path(data_dir) / subdir] if data_dir is not None else []) + [default]


_register(
    _Entry(
        spec=TaskSpec(
            name="digits",
            input_shape=(1, 8, 8),
            num_classes=10,
            train_size=1500,
            test_size=297,
            validation_size=300,
            default_recipe=Recipe(optimizer="adam", lr=1e-3, batch_size=64, steps=800),
            description="scikit-learn's 8x8 handwritten digits (first 1,500 train, last 297 test)",
        ),
        load=_load_digits,
        available=_has_module("sklearn"),
        cache_key=_no_dir,
    )
)
_register(
    _Entry(
        spec=TaskSpec(
            name="mnist1d",
            input_shape=(40,),
            num_classes=10,
            train_size=4000,
            test_size=1000,
            validation_size=500,
            # The MNIST-1D paper's lottery-ticket recipe.
            default_recipe=Recipe(optimizer="adam", lr=2e-2, batch_size=100, steps=1501),
            description="MNIST-1D (Greydanus & Kobak), generated with the package's default args",
        ),
        load=_load_mnist1d,
        available=_has_module("mnist1d"),
        cache_key=_no_dir,
    )
)
_register(
    _file_entry(
        TaskSpec(
            name="mnist",
            input_shape=(1, 28, 28),
            num_classes=10,
            train_size=60000,
            test_size=10000,
            validation_size=5000,
            # The LTH paper's LeNet-300-100 recipe, in full (50K iterations).
            default_recipe=Recipe(optimizer="adam", lr=1.2e-3, batch_size=60, steps=50000),
            description="MNIST (LeCun et al.), official IDX files, 60,000 / 10,000",
        ),
        IdxSource(subdir="mnist", default_dir=Path("/usr/share/datasets/mnist")),
    )
)
_register(
    _file_entry(
        TaskSpec(
            name="cifar10",
            input_shape=(3, 32, 32),
            num_classes=10,
            train_size=50000,
            test_size=10000,
            validation_size=5000,
            # The LTH paper's Conv-4 recipe (Adam 3e-4, batch 60, 25K iterations).
            # ResNets and VGGs want OpenLTH's SGD recipe instead; pass it explicitly.
            # OpenLTH's augmentation (random crop 32 with padding 4, horizontal flip).
            default_recipe=Recipe(optimizer="adam", lr=3e-4, batch_size=60, steps=25000, augment="crop-flip"),
            description="CIFAR-10 (Krizhevsky), official binary batches, 50,000 / 10,000, "
            "normalised per channel as OpenLTH does",
        ),
        CifarSource(
            subdir="cifar10",
            default_dir=Path("/usr/share/datasets/cifar10"),
            mean=OPENLTH_MEAN,
            std=OPENLTH_STD,
        ),
    )
)
_register(
    _file_entry(
        TaskSpec(
            name="fashion-mnist",
            input_shape=(1, 28, 28),
            num_classes=10,
            train_size=60000,
            test_size=10000,
            validation_size=5000,
            # The LTH paper's LeNet recipe (Adam 1.2e-3, batch 60), cut from 50K to 5K
            # iterations so a CPU worker verifies a ticket in minutes.
            default_recipe=Recipe(optimizer="adam", lr=1.2e-3, batch_size=60, steps=5000),
            description="Fashion-MNIST (Zalando), official IDX files, 60,000 / 10,000",
        ),
        IdxSource(subdir="fashion-mnist", default_dir=Path("/usr/share/datasets/fashion-mnist")),
    )
)


# ------------------------------------------------------------------------ public API


def get_task(name: str) -> TaskSpec:
    """The task called ``name``; raises ``UnknownTaskError``."""
    entry = _TASKS.get(name)
    if entry is None:
        raise UnknownTaskError(f"unknown task {name!r}; known: {', '.join(sorted(_TASKS))}")
    return entry.spec


def list_tasks() -> list[TaskSpec]:
    """Every registered task, by name."""
    return [_TASKS[n].spec for n in sorted(_TASKS)]


def is_available(name: str, data_dir: str | Path | None = None) -> bool:
    """Whether ``load_task`` can find the task's data here. Cheap (checks files exist);
    never raises for absent data, only ``UnknownTaskError`` for an unknown name."""
    get_task(name)
    return _TASKS[name].available(Path(data_dir) if data_dir is not None else None)


def _to_data(spec: TaskSpec, arrays: Arrays) -> TaskData:
    x_tr, y_tr, x_te, y_te = (torch.from_numpy(np.ascontiguousarray(a)) for a in arrays)
    shape = tuple(spec.input_shape)
    x_tr = x_tr.to(torch.float32).reshape(-1, *shape)
    x_te = x_te.to(torch.float32).reshape(-1, *shape)
    y_tr, y_te = y_tr.to(torch.int64), y_te.to(torch.int64)
    if (len(x_tr), len(x_te)) != (spec.train_size, spec.test_size):
        raise InvalidDatasetError(
            f"task {spec.name}: expected {spec.train_size}/{spec.test_size} samples, "
            f"found {len(x_tr)}/{len(x_te)}"
        )
    tensors = {"x_train": x_tr, "y_train": y_tr, "x_test": x_te, "y_test": y_te}
    fingerprint = tensors_digest(tensors)
    held_out = validation_indices(spec.train_size, spec.validation_size)
    keep = torch.ones(spec.train_size, dtype=torch.bool)
    keep[held_out] = False
    return TaskData(
        spec=spec, fingerprint=fingerprint, x_train=x_tr[keep], y_train=y_tr[keep],
        x_val=x_tr[held_out], y_val=y_tr[held_out], x_test=x_te, y_test=y_te,
    )


def validation_indices(train_size: int, validation_size: int) -> torch.Tensor:
    """The held-out indices of a training split: every ``k``-th example from ``k - 1``,
    ``k = train_size // validation_size``; empty when ``validation_size`` is 0."""
    if validation_size <= 0:
        return torch.zeros(0, dtype=torch.int64)
    if validation_size >= train_size:
        raise InvalidDatasetError(f"validation_size {validation_size} must be below train_size {train_size}")
    k = train_size // validation_size
    return torch.arange(validation_size, dtype=torch.int64) * k + (k - 1)


def load_task(
    name: str, data_dir: str | Path | None = None, device: str | torch.device = "cpu"
) -> TaskData:
    """Load the task's four tensors onto ``device`` (cached per process on the CPU).

    Raises:
        UnknownTaskError: no such task.
        TaskUnavailableError: the data is not on this machine.
        InvalidDatasetError: the data files are malformed.
    """
    spec = get_task(name)
    entry = _TASKS[name]
    folder = Path(data_dir) if data_dir is not None else None
    key = (name, entry.cache_key(folder))
    with _LOCK:  # one parse per process even when threads ask at once
        data = _CACHE.get(key)
        if data is None:
            data = _to_data(spec, entry.load(folder))
            _CACHE[key] = data
    dev = torch.device(device)
    if dev.type == "cpu":
        return data
    return TaskData(
        spec=spec,
        x_train=data.x_train.to(dev),
        y_train=data.y_train.to(dev),
        x_val=data.x_val.to(dev),
        y_val=data.y_val.to(dev),
        x_test=data.x_test.to(dev),
        y_test=data.y_test.to(dev),
        fingerprint=data.fingerprint,
    )

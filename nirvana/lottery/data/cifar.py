"""CIFAR-10's *binary* version (``cifar-10-binary.tar.gz``), parsed with numpy.

Format: ``data_batch_1.bin`` .. ``data_batch_5.bin`` (train, in that order) and
``test_batch.bin``; each file is a run of 3,073-byte records: one label byte (0..9),
then 3,072 pixel bytes: the 1,024 red values of the 32x32 image row by row, then the
green, then the blue. So a record's pixels reshape to ``(3, 32, 32)`` (channels first)
with no transpose. The official files hold 10,000 records each; the loader checks the
structure (whole records, labels < 10) and leaves the split sizes to the task.

The pickled "python version" is never read: unpickling is code execution.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nirvana.lottery.errors import InvalidDatasetError, TaskUnavailableError
from nirvana.lottery.data.sources import FileSource

RECORD = 1 + 3 * 32 * 32
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILE = "test_batch.bin"
#: The folder the official tarball extracts to.
ARCHIVE_DIR = "cifar-10-batches-bin"

#: OpenLTH's datasets/cifar10.py normalises with ImageNet's channel statistics
#: (torchvision.transforms.Normalize), not CIFAR-10's; we copy it to stay faithful.
OPENLTH_MEAN = (0.485, 0.456, 0.406)
OPENLTH_STD = (0.229, 0.224, 0.225)


def parse_records(data: bytes, *, name: str = "CIFAR-10 file") -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 (N, 3, 32, 32), labels int64 (N,))`` from one binary batch file."""
    if not data or len(data) % RECORD:
        raise InvalidDatasetError(
            f"{name}: {len(data)} bytes is not a whole number of {RECORD}-byte CIFAR-10 "
            "records (is this the binary version, cifar-10-binary.tar.gz?)"
        )
    rows = np.frombuffer(data, dtype=np.uint8).reshape(-1, RECORD)
    labels = rows[:, 0].astype(np.int64)
    if int(labels.max()) > 9:
        raise InvalidDatasetError(f"{name}: label {int(labels.max())} is not a CIFAR-10 class (0..9)")
    return rows[:, 1:].reshape(-1, 3, 32, 32).copy(), labels


@dataclass(frozen=True)
class CifarSource(FileSource):
    """CIFAR-10 binary files under a data directory.

    A candidate folder matches when it, or its ``cifar-10-batches-bin`` child, holds
    all six files. Pixels become float32 ``x / 255``, then ``(x - mean) / std`` per
    channel when ``mean``/``std`` are given (computed in float32, in that order).
    """

    subdir: str
    default_dir: Path
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None

    def files_in(self, folder: Path) -> list[Path] | None:
        """The six files (train batches 1..5, then test) if ``folder`` or its
        ``cifar-10-batches-bin`` holds them all, else None."""
        for where in (folder, folder / ARCHIVE_DIR):
            files = [where / f for f in (*TRAIN_FILES, TEST_FILE)]
            if all(f.is_file() for f in files):
                return files
        return None

    def placement_hint(self) -> str:
        return (
            f"extract the CIFAR-10 binary version (cifar-10-binary.tar.gz) into "
            f"$NIRVANA_DATA_DIR/{self.subdir}, so that {ARCHIVE_DIR}/ holds {', '.join(TRAIN_FILES)} and {TEST_FILE}"
        )

    def _pixels(self, images: np.ndarray) -> np.ndarray:
        x = images.astype(np.float32) / np.float32(255.0)
        if self.mean is not None and self.std is not None:
            mean = np.asarray(self.mean, dtype=np.float32).reshape(1, 3, 1, 1)
            std = np.asarray(self.std, dtype=np.float32).reshape(1, 3, 1, 1)
            x = (x - mean) / std
        return x

    def load(self, folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(x_train, y_train, x_test, y_test)``: float32 ``(N, 3, 32, 32)``, int64 labels;
        train is batches 1..5 concatenated in order."""
        files = self.files_in(folder)
        if files is None:
            raise TaskUnavailableError(f"{self.subdir} data not found in {folder}")
        parts = []
        for path in files:
            try:
                raw = path.read_bytes()
            except OSError as exc:
                raise InvalidDatasetError(f"{path}: cannot read ({exc})") from exc
            parts.append(parse_records(raw, name=str(path)))
        x_tr = np.concatenate([p[0] for p in parts[:-1]])
        y_tr = np.concatenate([p[1] for p in parts[:-1]])
        x_te, y_te = parts[-1]
        return self._pixels(x_tr), y_tr, self._pixels(x_te), y_te

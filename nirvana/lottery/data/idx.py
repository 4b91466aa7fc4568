"""IDX files (the MNIST family's format), parsed with numpy, gzipped or not.

Format: two zero bytes, a type byte (0x08 ubyte, 0x09 byte, 0x0B int16, 0x0C int32,
0x0D float32, 0x0E float64), a byte with the number of dimensions, then each
dimension as a big-endian uint32, then the data in C order, big-endian. Any
deviation (bad magic, truncated or trailing data) raises ``InvalidDatasetError``.
"""

from __future__ import annotations

import gzip
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nirvana.lottery.errors import InvalidDatasetError, TaskUnavailableError
from nirvana.lottery.data.sources import FileSource

_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

#: No IDX dataset we serve has more dims than this; a larger count means garbage.
_MAX_DIMS = 8


def parse_idx(data: bytes, *, name: str = "IDX file") -> np.ndarray:
    """Parse the bytes of one (decompressed) IDX file into an array in native byte order."""
    if len(data) < 4:
        raise InvalidDatasetError(f"{name}: {len(data)} bytes is too short for an IDX header")
    if data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise InvalidDatasetError(
            f"{name}: bad IDX magic {data[:4].hex()} (expected 0000 <type> <ndim>)"
        )
    dtype, ndim = _DTYPES[data[2]], data[3]
    if not 1 <= ndim <= _MAX_DIMS:
        raise InvalidDatasetError(f"{name}: IDX header says {ndim} dimensions")
    head = 4 + 4 * ndim
    if len(data) < head:
        raise InvalidDatasetError(f"{name}: truncated IDX header")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = math.prod(dims) * dtype.itemsize
    if len(data) - head != expected:
        raise InvalidDatasetError(
            f"{name}: IDX dims {dims} need {expected} data bytes, file has {len(data) - head}"
        )
    arr = np.frombuffer(data, dtype=dtype, offset=head).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file, gunzipping it when its name ends in ``.gz``."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise InvalidDatasetError(f"{path}: cannot read ({exc})") from exc
    return parse_idx(raw, name=str(path))


@dataclass(frozen=True)
class IdxSource(FileSource):
    """A dataset shipped as the four standard MNIST-style IDX files.

    ``subdir`` is the folder name under a data directory (``fashion-mnist``);
    ``default_dir`` where a system package installs it. Pixels are scaled by
    1/``scale``; images keep their IDX shape ``(N, H, W)`` (reshaped by the task).
    """

    subdir: str
    default_dir: Path
    scale: float = 255.0
    stems: tuple[str, str, str, str] = (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    )

    def files_in(self, folder: Path) -> list[Path] | None:
        """The four files in ``folder`` (plain preferred over ``.gz``), or None if any lacks."""
        found = []
        for stem in self.stems:
            for candidate in (folder / stem, folder / f"{stem}.gz"):
                if candidate.is_file():
                    found.append(candidate)
                    break
            else:
                return None
        return found

    def placement_hint(self) -> str:
        return (
            f"put the four IDX files ({', '.join(self.stems)}, .gz or not) "
            f"in $NIRVANA_DATA_DIR/{self.subdir}"
        )

    def load(self, folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(x_train, y_train, x_test, y_test)``: float32 images in [0, 1], int64 labels."""
        files = self.files_in(folder)
        if files is None:
            raise TaskUnavailableError(f"{self.subdir} data not found in {folder}")
        x_tr, y_tr, x_te, y_te = (read_idx(p) for p in files)
        for x, y, split in ((x_tr, y_tr, "train"), (x_te, y_te, "test")):
            if x.ndim < 2 or y.ndim != 1 or len(x) != len(y):
                raise InvalidDatasetError(
                    f"{folder}: {split} images {x.shape} and labels {y.shape} do not pair up"
                )
        scale = np.float32(self.scale)
        return (
            x_tr.astype(np.float32) / scale,
            y_tr.astype(np.int64),
            x_te.astype(np.float32) / scale,
            y_te.astype(np.int64),
        )

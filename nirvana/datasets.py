"""``nirvana data fetch``: the canonical files of the file-backed tasks, downloaded on
request (never implicitly) and checked against their published checksums.

Each file goes to ``<name>.part`` first, resumed with ``Range`` after an interruption,
and takes its name only once its MD5 matches the one its publisher lists (the MD5s
below are the ones on the datasets' pages, which torchvision checks too). A file that
does not match is removed and the fetch fails. The destination is the folder the task
reads: ``<data dir>/<task>`` (see
:func:`nirvana.paths.default_data_dir`). CIFAR-10's tarball is unpacked
member by member (only the six batch files, by name: no path from the archive is
trusted) and then removed.
"""

from __future__ import annotations

import hashlib
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from nirvana.errors import NirvanaError, raise_for_problem
from nirvana.transport import RetryingTransport

_CHUNK = 1 << 20
_IDX = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


class ChecksumMismatchError(NirvanaError):
    """A downloaded data file whose MD5 is not the published one (it was removed)."""

    code = "checksum_mismatch"


class UnknownDatasetError(NirvanaError):
    code = "unknown_dataset"


@dataclass(frozen=True)
class Dataset:
    """A task's published files: ``base_url`` + each name, with its MD5."""

    task: str
    base_url: str
    md5: dict[str, str]
    homepage: str

    def urls(self, base_url: str | None = None) -> dict[str, str]:
        base = (base_url or self.base_url).rstrip("/")
        return {name: f"{base}/{name}" for name in self.md5}


DATASETS: dict[str, Dataset] = {
    "fashion-mnist": Dataset(
        task="fashion-mnist",
        base_url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com",
        md5=dict(zip(_IDX, (
            "8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
            "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310",
        ), strict=True)),  # fmt: skip
        homepage="https://github.com/zalandoresearch/fashion-mnist",
    ),
    "mnist": Dataset(
        task="mnist",
        # LeCun's own server refuses most downloads now; this is the copy torchvision uses.
        base_url="https://ossci-datasets.s3.amazonaws.com/mnist",
        md5=dict(zip(_IDX, (
            "f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
            "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c",
        ), strict=True)),  # fmt: skip
        homepage="http://yann.lecun.com/exdb/mnist/",
    ),
    "cifar10": Dataset(
        task="cifar10",
        base_url="https://www.cs.toronto.edu/~kriz",
        md5={"cifar-10-binary.tar.gz": "c32a1d4ab5d03f1284b67883e8d87530"},
        homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
    ),
}
CIFAR_MEMBERS = tuple(f"cifar-10-batches-bin/{n}" for n in (*(f"data_batch_{i}.bin" for i in range(1, 6)), "test_batch.bin"))

Progress = Callable[[str], Callable[[int, int | None], None] | None]


def dataset(task: str) -> Dataset:
    """The downloadable dataset of ``task``; ``UnknownDatasetError`` names those there are."""
    found = DATASETS.get(task)
    if found is None:
        raise UnknownDatasetError(f"no files to fetch for {task!r}; `nirvana data fetch` knows: {', '.join(DATASETS)}")
    return found


def md5_file(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(
    task: str | Dataset,
    data_dir: Path,
    *,
    base_url: str | None = None,
    progress: Progress | None = None,
    timeout: float = 60.0,
) -> Path:
    """Download ``task``'s files (a name in :data:`DATASETS`, or a :class:`Dataset`)
    into ``data_dir/<task>`` and return that folder.

    Files already there with the published MD5 are kept; ``.part`` files are resumed.

    Args:
        base_url: fetch from here instead of the publisher (a mirror; tests).
        progress: called with a file name, returns the ``(done, total)`` callback for it.

    Raises:
        UnknownDatasetError; ChecksumMismatchError (the file is removed);
        ``NirvanaError`` (``download_failed``) when the connection fails, and the
        server's error (``raise_for_problem``) for an HTTP error.
    """
    spec = task if isinstance(task, Dataset) else dataset(task)
    task = spec.task
    folder = data_dir / task
    if task == "cifar10" and all((folder / m).is_file() for m in CIFAR_MEMBERS):
        return folder  # unpacked before (the tarball is gone)
    folder.mkdir(parents=True, exist_ok=True)
    with httpx.Client(transport=RetryingTransport(), timeout=timeout, follow_redirects=True) as http:
        for name, url in spec.urls(base_url).items():
            target = folder / name
            if target.is_file() and md5_file(target) == spec.md5[name]:
                continue
            _download(http, url, target, spec.md5[name], progress(name) if progress else None)
    if task == "cifar10":
        _unpack_cifar(folder / "cifar-10-binary.tar.gz", folder)
    return folder


def _download(
    http: httpx.Client, url: str, target: Path, md5: str, on_bytes: Callable[[int, int | None], None] | None
) -> None:
    part = target.with_name(target.name + ".part")
    offset = part.stat().st_size if part.is_file() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        with http.stream("GET", url, headers=headers) as response:
            if response.status_code == 416:  # the .part is already whole (or longer): check it
                response.read()
            else:
                if response.status_code >= 400:
                    response.read()
                    raise_for_problem(response)
                resumed = response.status_code == 206
                done = offset if resumed else 0
                length = response.headers.get("content-length")
                total = done + int(length) if length and length.isdigit() else None
                with part.open("ab" if resumed else "wb") as fh:
                    for chunk in response.iter_bytes():  # as received: a dropped connection keeps what came
                        fh.write(chunk)
                        done += len(chunk)
                        if on_bytes is not None:
                            on_bytes(done, total)
    except httpx.TransportError as exc:
        raise NirvanaError(f"cannot download {url} ({type(exc).__name__}: {exc}); run it again to resume", code="download_failed") from None
    actual = md5_file(part)
    if actual != md5:
        part.unlink(missing_ok=True)
        raise ChecksumMismatchError(f"{url} has MD5 {actual}, the published one is {md5}; the file was removed")
    part.replace(target)


def _unpack_cifar(archive: Path, folder: Path) -> None:
    out = folder / "cifar-10-batches-bin"
    out.mkdir(exist_ok=True)
    with tarfile.open(archive, "r:gz") as tar:
        for member in CIFAR_MEMBERS:
            source = tar.extractfile(member)
            if source is None:
                raise NirvanaError(f"{archive} has no regular file {member}", code="invalid_dataset")
            tmp = out / (Path(member).name + ".part")
            with source, tmp.open("wb") as fh:
                while chunk := source.read(_CHUNK):
                    fh.write(chunk)
            tmp.replace(out / Path(member).name)
    archive.unlink()

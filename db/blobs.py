"""Content-addressed blob storage behind a small interface.

Keys are SHA-256 hex digests of the bytes. ``put`` is atomic and durable: a reader
never sees a half-written blob, and the bytes are on disk (fsync) before ``put``
returns, so a row that names a blob may commit right after. Storage knows nothing of
rows; ``db.repositories.blobs`` keeps the index and collects unreferenced blobs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal, Protocol, runtime_checkable

CHUNK = 1 << 20


class BlobNotFoundError(KeyError):
    pass


@runtime_checkable
class BlobStorage(Protocol):
    """What the API and the worker need from blob storage."""

    def put(self, data: bytes) -> str:
        """Store ``data`` durably; return its SHA-256 hex. Storing twice writes nothing
        again (a backend may refresh the blob's age)."""
        ...

    def open(self, sha256: str) -> BinaryIO:
        """A binary file object of the blob; ``BlobNotFoundError`` if absent."""
        ...

    def exists(self, sha256: str) -> bool: ...

    def size(self, sha256: str) -> int: ...

    def delete(self, sha256: str) -> None:
        """Remove the blob if present (absent is not an error)."""
        ...

    def modified_at(self, sha256: str) -> dt.datetime:
        """When the blob was last written (UTC); ``BlobNotFoundError`` if absent."""
        ...

    def iter_digests(self) -> Iterator[str]:
        """Every stored digest (for garbage collection and audits)."""
        ...


def blob_key(sha256: str) -> str:
    """The storage path of a blob: ``ab/cd/ef01...`` (two levels of fan-out)."""
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    return f"{sha256[:2]}/{sha256[2:4]}/{sha256[4:]}"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class LocalBlobStorage:
    """Blobs as files under ``root``, written to a temporary file, fsynced, renamed."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, sha256: str) -> Path:
        return self.root / blob_key(sha256)

    def put(self, data: bytes) -> str:
        digest = sha256_hex(data)
        path = self._path(digest)
        if path.exists():
            # Stored already: refresh its age, so garbage collection's grace period
            # protects a file an upload is about to reference again.
            os.utime(path)
            return digest
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        # The rename is durable only once the directory entry is.
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return digest

    def open(self, sha256: str) -> BinaryIO:
        try:
            return self._path(sha256).open("rb")
        except FileNotFoundError:
            raise BlobNotFoundError(sha256) from None

    def exists(self, sha256: str) -> bool:
        return self._path(sha256).is_file()

    def size(self, sha256: str) -> int:
        try:
            return self._path(sha256).stat().st_size
        except FileNotFoundError:
            raise BlobNotFoundError(sha256) from None

    def delete(self, sha256: str) -> None:
        self._path(sha256).unlink(missing_ok=True)

    def modified_at(self, sha256: str) -> dt.datetime:
        """When the blob was written (UTC), for garbage collection's grace period."""
        try:
            return dt.datetime.fromtimestamp(self._path(sha256).stat().st_mtime, dt.UTC)
        except FileNotFoundError:
            raise BlobNotFoundError(sha256) from None

    def iter_digests(self) -> Iterator[str]:
        """Every stored digest (for garbage collection and audits)."""
        for path in self.root.glob("??/??/*"):
            digest = f"{path.parent.parent.name}{path.parent.name}{path.name}"
            # Skip temporary files of writes in progress and anything not ours.
            if len(digest) == 64 and all(c in "0123456789abcdef" for c in digest):
                yield digest


@dataclass(frozen=True)
class BlobConfig:
    """Which backend holds the blobs, as plain values: it crosses into the worker's
    training child, which builds its own storage from it."""

    backend: Literal["local", "s3"] = "local"
    root: Path | None = None
    bucket: str | None = None
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None


def make_storage(config: BlobConfig) -> BlobStorage:
    """The storage ``config`` names: files under ``root``, or an S3-compatible bucket."""
    if config.backend == "s3":
        from db.blobs_s3 import S3BlobStorage

        if not config.bucket:
            raise ValueError("the s3 blob backend needs a bucket (NIRVANA_S3_BUCKET)")
        return S3BlobStorage(config.bucket, prefix=config.prefix, endpoint_url=config.endpoint_url, region=config.region)
    if config.root is None:
        raise ValueError("the local blob backend needs a root folder")
    return LocalBlobStorage(config.root)


def read_range(handle: BinaryIO, start: int, length: int) -> Iterator[bytes]:
    """Yield ``length`` bytes of ``handle`` from ``start`` in chunks, then close it."""
    with handle:
        handle.seek(start)
        remaining = length
        while remaining > 0:
            chunk = handle.read(min(CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk

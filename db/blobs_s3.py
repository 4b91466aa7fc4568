"""Blobs in an S3-compatible bucket (AWS S3, MinIO, Ceph, ...), under the same
content-addressed keys as the local backend: ``<prefix>ab/cd/ef01...``.

S3 writes are atomic per object and durable once ``put_object`` returns, which is the
contract ``BlobStorage.put`` promises. ``boto3`` is imported here only: install the
``s3`` extra (``pip install 'nirvana[s3]'``) to use this backend.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from typing import Any, BinaryIO

from db.blobs import CHUNK, BlobNotFoundError, blob_key, sha256_hex


class S3BlobStorage:
    def __init__(
        self, bucket: str, *, prefix: str = "", endpoint_url: str | None = None, region: str | None = None,
        client: Any = None,
    ) -> None:  # fmt: skip
        import boto3

        self.bucket = bucket
        self.prefix = prefix
        self.client = client or boto3.client("s3", endpoint_url=endpoint_url, region_name=region)

    def _key(self, sha256: str) -> str:
        return self.prefix + blob_key(sha256)

    def _head(self, sha256: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            head: dict[str, Any] = self.client.head_object(Bucket=self.bucket, Key=self._key(sha256))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return head

    def put(self, data: bytes) -> str:
        digest = sha256_hex(data)
        # Written again even when present: S3 has no cheap "touch", and refreshing
        # LastModified keeps garbage collection's grace period honest for reused blobs.
        self.client.put_object(Bucket=self.bucket, Key=self._key(digest), Body=data)
        return digest

    def open(self, sha256: str) -> BinaryIO:
        head = self._head(sha256)
        if head is None:
            raise BlobNotFoundError(sha256)
        # Buffered in 1 MiB ranged GETs; a seek drops the buffer, so Range requests stay cheap.
        return io.BufferedReader(_RangedReader(self, self._key(sha256), int(head["ContentLength"])), buffer_size=CHUNK)

    def exists(self, sha256: str) -> bool:
        return self._head(sha256) is not None

    def size(self, sha256: str) -> int:
        head = self._head(sha256)
        if head is None:
            raise BlobNotFoundError(sha256)
        return int(head["ContentLength"])

    def delete(self, sha256: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(sha256))

    def modified_at(self, sha256: str) -> dt.datetime:
        head = self._head(sha256)
        if head is None:
            raise BlobNotFoundError(sha256)
        modified: dt.datetime = head["LastModified"]
        return modified.astimezone(dt.UTC)

    def iter_digests(self) -> Iterator[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix)
        for page in pages:
            for item in page.get("Contents", []):
                digest = item["Key"][len(self.prefix) :].replace("/", "")
                if len(digest) == 64 and all(c in "0123456789abcdef" for c in digest):
                    yield digest


class _RangedReader(io.RawIOBase):
    """A seekable read-only file over one object: each read after a seek is one ranged
    GET, so serving a ``Range`` request downloads only that range."""

    def __init__(self, storage: S3BlobStorage, key: str, size: int) -> None:
        super().__init__()
        self.storage, self.key, self.size, self.position = storage, key, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        self.position = max(0, base + offset)
        return self.position

    def tell(self) -> int:
        return self.position

    def read(self, size: int = -1) -> bytes:
        if self.position >= self.size or size == 0:
            return b""
        end = self.size - 1 if size is None or size < 0 else min(self.size, self.position + size) - 1
        response = self.storage.client.get_object(
            Bucket=self.storage.bucket, Key=self.key, Range=f"bytes={self.position}-{end}"
        )
        data: bytes = response["Body"].read()
        self.position += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

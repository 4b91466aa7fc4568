"""Every blob storage backend keeps the same contract: the local files and an
S3-compatible bucket (moto's S3 server on loopback: a real HTTP S3 endpoint)."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pytest

from db.blobs import BlobConfig, BlobNotFoundError, BlobStorage, make_storage, read_range


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStorage:
    if request.param == "local":
        return make_storage(BlobConfig(root=tmp_path / "blobs"))
    endpoint = request.getfixturevalue("s3_endpoint")
    prefix = f"{tmp_path.name}/"  # each test its own corner of the shared bucket
    return make_storage(BlobConfig(backend="s3", bucket="nirvana-test", prefix=prefix, endpoint_url=endpoint))


def test_put_is_content_addressed_and_idempotent(storage: BlobStorage) -> None:
    data = b"mask bytes" * 1000
    sha = storage.put(data)
    assert sha == hashlib.sha256(data).hexdigest()
    assert storage.put(data) == sha
    assert storage.exists(sha) and storage.size(sha) == len(data)
    with storage.open(sha) as handle:
        assert handle.read() == data
    assert list(storage.iter_digests()) == [sha]


def test_ranges_read_exactly_the_requested_bytes(storage: BlobStorage) -> None:
    data = bytes(range(256)) * 40
    sha = storage.put(data)
    assert b"".join(read_range(storage.open(sha), 1000, 300)) == data[1000:1300]
    assert b"".join(read_range(storage.open(sha), len(data) - 7, 7)) == data[-7:]


def test_absent_blobs_and_deletion(storage: BlobStorage) -> None:
    missing = "0" * 64
    assert not storage.exists(missing)
    for call in (storage.open, storage.size, storage.modified_at):
        with pytest.raises(BlobNotFoundError):
            call(missing)
    sha = storage.put(b"short-lived")
    storage.delete(sha)
    storage.delete(sha)  # absent is not an error
    assert not storage.exists(sha) and list(storage.iter_digests()) == []


def test_modified_at_is_recent_and_refreshed_by_a_second_put(storage: BlobStorage) -> None:
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    sha = storage.put(b"reused")
    first = storage.modified_at(sha)
    assert first >= before and first.tzinfo is not None
    assert storage.modified_at(storage.put(b"reused")) >= first


def test_keys_refuse_anything_but_a_sha256(storage: BlobStorage) -> None:
    with pytest.raises(ValueError):
        storage.exists("../../etc/passwd")

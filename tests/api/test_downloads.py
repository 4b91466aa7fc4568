"""Downloads: exact bytes, ETag = sha256, 304, Range, 416."""

from __future__ import annotations

import hashlib

from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from api.app import create_app
from api.deps import get_session
from api.settings import ApiSettings
from db.tokens import create_token

from nirvana.lottery.tickets.files import load_tensors
from tests.api.test_query_counts import count_queries
from tests.support.tickets import make_ticket


def test_mask_download_is_the_uploaded_file_with_its_sha256_etag(client: TestClient, auth: dict[str, str]) -> None:
    files = make_ticket()
    ticket = client.post("/api/v1/tickets", files=files.multipart(), headers=auth).json()
    response = client.get(f"/api/v1/tickets/{ticket['short_id']}/mask")
    assert response.status_code == 200
    assert response.content == files.mask_bytes()
    digest = hashlib.sha256(response.content).hexdigest()
    assert response.headers["etag"] == f'"{digest}"'
    assert "immutable" in response.headers["cache-control"]
    mask = load_tensors(response.content)
    assert all(mask[name].equal(files.mask[name]) for name in files.mask)

    head = client.head(f"/api/v1/tickets/{ticket['id']}/mask")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["etag"] == f'"{digest}"' and head.headers["content-length"] == str(len(files.mask_bytes()))

    cached = client.get(f"/api/v1/tickets/{ticket['id']}/mask", headers={"If-None-Match": f'"{digest}"'})
    assert cached.status_code == 304 and cached.content == b""
    stale = client.get(f"/api/v1/tickets/{ticket['id']}/mask", headers={"If-None-Match": '"0000"'})
    assert stale.status_code == 200


def test_range_requests_return_the_requested_bytes(client: TestClient, auth: dict[str, str]) -> None:
    files = make_ticket()
    ticket = client.post("/api/v1/tickets", files=files.multipart(with_init=True), headers=auth).json()
    data = files.init_bytes()
    url = f"/api/v1/tickets/{ticket['id']}/init"
    head = client.get(url, headers={"Range": "bytes=0-7"})
    assert head.status_code == 206 and head.content == data[:8]
    assert head.headers["content-range"] == f"bytes 0-7/{len(data)}"
    tail = client.get(url, headers={"Range": "bytes=-100"})
    assert tail.status_code == 206 and tail.content == data[-100:]
    rest = client.get(url, headers={"Range": f"bytes={len(data) - 10}-"})
    assert rest.content == data[-10:]
    bad = client.get(url, headers={"Range": f"bytes={len(data) + 5}-"})
    assert bad.status_code == 416 and bad.json()["code"] == "range_not_satisfiable"
    assert bad.headers["content-range"] == f"bytes */{len(data)}"


def test_download_of_unknown_ticket_is_404(client: TestClient) -> None:
    response = client.get("/api/v1/tickets/" + "ab" * 6 + "/mask")
    assert (response.status_code, response.json()["code"]) == (404, "ticket_not_found")


def test_uploads_and_ranged_downloads_through_the_s3_backend(
    database_url: str, db_session: Session, s3_endpoint: str, tmp_path: Path
) -> None:
    settings = ApiSettings(
        database_url=database_url, blob_backend="s3", s3_bucket="nirvana-test", s3_prefix=f"{tmp_path.name}/",
        s3_endpoint_url=s3_endpoint,
    )  # fmt: skip
    app = create_app(settings)
    app.dependency_overrides[get_session] = lambda: db_session
    _, token = create_token(db_session, user_name="s3", token_name="s3")
    files = make_ticket()
    with TestClient(app) as client:
        ticket = client.post("/api/v1/tickets", files=files.multipart(), headers={"Authorization": f"Bearer {token}"})
        assert ticket.status_code == 201, ticket.text
        url = ticket.json()["links"]["mask"]
        assert client.get(url).content == files.mask_bytes()
        part = client.get(url, headers={"Range": "bytes=8-99"})
        assert part.status_code == 206 and part.content == files.mask_bytes()[8:100]


def test_a_known_ticket_downloads_and_revalidates_without_a_query(
    client: TestClient, auth: dict[str, str], db_session: Session
) -> None:
    files = make_ticket()
    ticket = client.post("/api/v1/tickets", files=files.multipart(), headers=auth).json()
    url = f"/api/v1/tickets/{ticket['id']}/mask"
    with count_queries(db_session) as first:
        etag = client.get(url).headers["etag"]
    assert len(first) == 1 and "manifest" not in first[0]  # three columns, not the row
    with count_queries(db_session) as again:
        assert client.get(url, headers={"If-None-Match": etag}).status_code == 304
        assert client.get(url).content == files.mask_bytes()
    assert again == []


def _handing_off(database_url: str, db_session: Session, blob_dir: Path, **settings: str) -> TestClient:
    app = create_app(ApiSettings(database_url=database_url, blob_dir=blob_dir, **settings))  # type: ignore[arg-type]
    app.dependency_overrides[get_session] = lambda: db_session
    return TestClient(app)


def test_with_nginx_in_front_a_download_is_an_accel_redirect_after_the_checks(
    database_url: str, db_session: Session, blob_dir: Path, auth: dict[str, str]
) -> None:
    files = make_ticket()
    with _handing_off(database_url, db_session, blob_dir, accel_redirect_prefix="/_blobs/") as client:
        ticket = client.post("/api/v1/tickets", files=files.multipart(), headers=auth).json()
        digest = hashlib.sha256(files.mask_bytes()).hexdigest()
        answer = client.get(ticket["links"]["mask"])
        assert answer.status_code == 200 and answer.content == b""
        assert answer.headers["x-accel-redirect"] == f"/_blobs/{digest[:2]}/{digest[2:4]}/{digest[4:]}"
        # The file nginx will serve is the blob under the blob directory, by that key.
        assert (blob_dir / answer.headers["x-accel-redirect"].removeprefix("/_blobs/")).read_bytes() == files.mask_bytes()
        assert answer.headers["etag"] == f'"{digest}"' and "immutable" in answer.headers["cache-control"]
        assert client.get(ticket["links"]["mask"], headers={"If-None-Match": f'"{digest}"'}).status_code == 304
        assert client.get(f"/api/v1/tickets/{'0' * 64}/mask").status_code == 404
        assert "x-accel-redirect" not in client.head(ticket["links"]["mask"]).headers


def test_with_a_blob_url_base_a_download_redirects_to_the_bucket(
    database_url: str, db_session: Session, blob_dir: Path, auth: dict[str, str]
) -> None:
    files = make_ticket()
    with _handing_off(database_url, db_session, blob_dir, blob_url_base="https://cdn.example/nirvana/") as client:
        ticket = client.post("/api/v1/tickets", files=files.multipart(), headers=auth).json()
        digest = hashlib.sha256(files.mask_bytes()).hexdigest()
        answer = client.get(ticket["links"]["mask"], follow_redirects=False)
        assert answer.status_code == 307
        assert answer.headers["location"] == f"https://cdn.example/nirvana/{digest[:2]}/{digest[2:4]}/{digest[4:]}"


def test_downloads_stream_from_storage_when_the_file_is_not_kept_in_memory(
    database_url: str, db_session: Session, blob_dir: Path, auth: dict[str, str]
) -> None:
    files = make_ticket()
    data = files.mask_bytes()
    with _handing_off(database_url, db_session, blob_dir, blob_memory_mb="0") as client:
        url = client.post("/api/v1/tickets", files=files.multipart(), headers=auth).json()["links"]["mask"]
        for _ in range(2):  # nothing kept: the second download reads storage again
            assert client.get(url).content == data
        part = client.get(url, headers={"Range": "bytes=3-12"})
        assert part.status_code == 206 and part.content == data[3:13]
        assert part.headers["content-range"] == f"bytes 3-12/{len(data)}"
        assert client.app.state.blob_memory.entries == {}  # type: ignore[attr-defined]


def test_a_file_kept_in_memory_answers_ranges_and_heads_like_the_stored_one(client: TestClient, auth: dict[str, str]) -> None:
    files = make_ticket()
    data = files.mask_bytes()
    url = client.post("/api/v1/tickets", files=files.multipart(), headers=auth).json()["links"]["mask"]
    assert client.get(url).content == data  # read from storage, now kept
    sha = hashlib.sha256(data).hexdigest()
    assert client.app.state.blob_memory.get(sha) == data  # type: ignore[attr-defined]
    assert client.get(url).content == data
    part = client.get(url, headers={"Range": "bytes=-7"})
    assert part.status_code == 206 and part.content == data[-7:]
    head = client.head(url)
    assert head.headers["content-length"] == str(len(data)) and head.content == b""

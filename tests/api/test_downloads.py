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

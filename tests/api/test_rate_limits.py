"""Rate limits: a bucket per client and per kind of request, 429 with Retry-After."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from api.app import create_app
from api.deps import get_session
from api.ratelimit import TokenBuckets
from api.settings import ApiSettings
from tests.support.tickets import make_ticket


@pytest.fixture
def limited(database_url: str, db_session: Session, blob_dir) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    settings = ApiSettings(
        database_url=database_url, blob_dir=blob_dir, rate_limit_api_per_minute=3, rate_limit_downloads_per_minute=2
    )
    app = create_app(settings)
    app.dependency_overrides[get_session] = lambda: db_session
    with TestClient(app) as client:
        yield client


def test_the_fourth_api_request_in_a_minute_is_429(limited: TestClient) -> None:
    answers = [limited.get("/api/v1/tasks") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[0].headers["ratelimit-policy"] == '"api";q=3;w=60'
    assert [a.headers["ratelimit"].split(";")[1] for a in answers[:3]] == ["r=2", "r=1", "r=0"]
    refused = answers[3]
    assert refused.json()["code"] == "rate_limited" and refused.headers["content-type"] == "application/problem+json"
    assert 1 <= int(refused.headers["retry-after"]) <= 20
    assert limited.get("/").status_code == 200  # pages and docs are not limited


def test_downloads_and_tokens_have_buckets_of_their_own(limited: TestClient, token: str) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    ticket = limited.post("/api/v1/tickets", files=make_ticket().multipart(), headers=auth).json()
    mask = ticket["links"]["mask"]
    downloads = [limited.get(mask).status_code for _ in range(3)]
    assert downloads == [200, 200, 429]
    # The anonymous api bucket still has room, and the token's own buckets are fresh.
    assert limited.get("/api/v1/tasks").status_code == 200
    assert [limited.get(mask, headers=auth).status_code for _ in range(2)] == [200, 200]


def test_buckets_refill_with_time() -> None:
    now = [0.0]
    buckets = TokenBuckets(60, clock=lambda: now[0])  # one a second
    assert all(buckets.take("k")[0] for _ in range(60))
    allowed, remaining, wait = buckets.take("k")
    assert (allowed, remaining) == (False, 0) and 0 < wait <= 1
    now[0] += 2.0
    assert buckets.take("k")[0] and buckets.take("k")[0] and not buckets.take("k")[0]

"""The read cache on a real uvicorn and a real database: anonymous reads are answered
from memory until anything public changes, whoever changes it, and nothing private,
failed or unchecked is ever answered from it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import psycopg
import pytest

from tests.support.polling import until
from tests.support.processes import ServedTicket, uvicorn_with_ticket
from tests.support.tickets import make_ticket

pytestmark = pytest.mark.e2e

# A notification crosses PostgreSQL and a thread: milliseconds, given a generous bound.
NOTICE_SECONDS = 20.0


@pytest.fixture(scope="module")
def service(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedTicket]:
    """One server for the module; each test checks only what its own requests did."""
    tmp = tmp_path_factory.mktemp("read-cache")
    with uvicorn_with_ticket(module_database_url, tmp, "cache", mask_seed=1, NIRVANA_RATE_LIMIT_API_PER_MINUTE="0") as served:
        _wait_until_listening(served.url)
        yield served


def _wait_until_listening(url: str) -> None:
    """The listener connects in the background; until it does, nothing is cached."""
    path = f"{url}/api/v1/architectures/conv2?task=digits"

    def answered_from_memory() -> bool:
        httpx.get(path, timeout=30)
        return httpx.get(path, timeout=30).headers.get("x-cache") == "hit"

    until(answered_from_memory, NOTICE_SECONDS, "the read cache to start answering")


def test_a_repeated_anonymous_read_is_answered_from_memory(service: ServedTicket) -> None:
    path = f"{service.url}/api/v1/tickets?task=digits&limit=5"
    first, second = httpx.get(path, timeout=30), httpx.get(path, timeout=30)
    assert first.status_code == second.status_code == 200
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("miss", "hit")
    assert first.content == second.content
    assert first.headers["x-request-id"] != second.headers["x-request-id"]  # added per request
    # Counted under its route, like an answer the route gave.
    metrics = httpx.get(f"{service.url}/metrics", timeout=30).text
    assert 'route="unmatched"' not in metrics
    assert 'nirvana_http_requests_total{method="GET",route="/api/v1/tickets",status="200"}' in metrics


def test_a_change_committed_by_someone_else_is_read_without_waiting_for_anything_else(service: ServedTicket) -> None:
    detail = f"{service.url}/api/v1/tickets/{service.ticket['id']}"
    httpx.get(detail, timeout=30)
    assert httpx.get(detail, timeout=30).headers["x-cache"] == "hit"
    # A write the API never sees (as a worker's or an operator's would be).
    with psycopg.connect(service.database_url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("UPDATE tickets SET title = 'renamed elsewhere' WHERE id = %s", (service.ticket["id"],))
    until(lambda: httpx.get(detail, timeout=30).json()["title"] == "renamed elsewhere", NOTICE_SECONDS,
          "the cache to stop answering what the database no longer holds")  # fmt: skip


def test_a_write_through_the_api_is_read_back_at_once(service: ServedTicket) -> None:
    listing = f"{service.url}/api/v1/tickets?task=digits"
    httpx.get(listing, timeout=30)
    assert httpx.get(listing, timeout=30).headers["x-cache"] == "hit"
    created = httpx.post(f"{service.url}/api/v1/tickets", files=make_ticket(mask_seed=2).multipart(),
                         headers=service.auth, timeout=60)  # fmt: skip
    assert created.status_code == 201, created.text
    # No waiting: the uploader's next read already lists it.
    after = httpx.get(listing, timeout=30)
    assert after.headers["x-cache"] == "miss"
    assert created.json()["id"] in [item["id"] for item in after.json()["items"]]


def test_requests_with_a_token_are_never_answered_from_memory(service: ServedTicket) -> None:
    path = f"{service.url}/api/v1/tickets?limit=3"
    httpx.get(path, timeout=30)
    assert httpx.get(path, timeout=30).headers["x-cache"] == "hit"
    with_token = httpx.get(path, headers=service.auth, timeout=30)
    # Answered by the route itself (no X-Cache): the token was checked.
    assert with_token.status_code == 200 and "x-cache" not in with_token.headers
    made_up = httpx.get(path, headers={"Authorization": "Bearer not-a-token"}, timeout=30)
    assert made_up.status_code == 401 and made_up.json()["code"] == "invalid_token"


def test_errors_downloads_and_health_are_not_kept(service: ServedTicket) -> None:
    missing = f"{service.url}/api/v1/tickets/{'0' * 64}"
    for _ in range(2):
        answer = httpx.get(missing, timeout=30)
        assert answer.status_code == 404 and answer.headers.get("x-cache") != "hit"
    links = service.ticket["links"]
    assert isinstance(links, dict)
    for path in (links["mask"], "/api/v1/health", "/api/v1/tasks"):
        for _ in range(2):
            assert "x-cache" not in httpx.get(service.url + path, timeout=30).headers

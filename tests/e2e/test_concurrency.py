"""Under load the service degrades, never stalls: a real uvicorn with a database pool far
smaller than the number of concurrent requests answers every one of them, and a request
beyond the in-flight bound gets a quick 503 instead of a place in a queue."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.tokens import committed_token
from tests.support.processes import service_env, uvicorn_server
from tests.support.tickets import make_ticket

pytestmark = pytest.mark.e2e

CONCURRENT = 200
# Generous for a shared two-core machine; the stall this guards against held requests
# for the pool's 30-s timeout and then failed them.
BOUND_SECONDS = 20.0


@pytest.fixture
def seeded(fresh_database_url: str, tmp_path: Path) -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A real uvicorn with a 4-connection pool and three tickets; yields (url, tickets)."""
    env = service_env(
        fresh_database_url, tmp_path / "blobs",
        # A pool timeout long enough that every request may wait its turn: the test is
        # about the stall (a request waiting on a thread that waits on it), not the 503
        # that a short timeout (the default, 1 s) answers when the pool stays exhausted.
        NIRVANA_DB_POOL_SIZE="4", NIRVANA_MAX_IN_FLIGHT="1000", NIRVANA_DB_POOL_TIMEOUT="30",
        NIRVANA_RATE_LIMIT_API_PER_MINUTE="0", NIRVANA_RATE_LIMIT_DOWNLOADS_PER_MINUTE="0",
        # Every request runs its query: with the read cache, 200 requests of six kinds
        # would ask the database six times and prove nothing about the pool.
        NIRVANA_READ_CACHE_MB="0",
    )  # fmt: skip
    auth = {"Authorization": f"Bearer {committed_token(fresh_database_url, 'load')}"}
    with uvicorn_server(env, tmp_path / "api.log") as url:
        tickets = []
        for seed in range(3):
            answer = httpx.post(f"{url}/api/v1/tickets", files=make_ticket(mask_seed=seed).multipart(), headers=auth, timeout=60)
            assert answer.status_code == 201, answer.text
            tickets.append(answer.json())
        yield url, tickets


async def _timed(client: httpx.AsyncClient, path: str) -> tuple[str, int, float]:
    start = time.monotonic()
    try:
        status = (await client.get(path)).status_code
    except httpx.TimeoutException:
        status = 0
    return path, status, time.monotonic() - start


async def _burst(url: str, paths: list[str]) -> list[tuple[str, int, float]]:
    limits = httpx.Limits(max_connections=len(paths), max_keepalive_connections=len(paths))
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=BOUND_SECONDS * 3) as client:
        return await asyncio.gather(*(_timed(client, path) for path in paths))


def test_200_concurrent_requests_on_a_4_connection_pool_all_finish(seeded: tuple[str, list[dict[str, str]]]) -> None:
    url, tickets = seeded
    kinds = [
        "/api/v1/tickets?limit=20",
        "/api/v1/tickets?task=digits&sort=-sparsity",
        f"/api/v1/tickets/{tickets[0]['id']}",
        tickets[1]["links"]["mask"],
        "/api/v1/tasks",
        "/api/v1/health",
    ]
    paths = [kinds[i % len(kinds)] for i in range(CONCURRENT)]
    results = asyncio.run(_burst(url, paths))
    failed = [(path, status) for path, status, _ in results if status != 200]
    slowest = max(seconds for *_, seconds in results)
    assert not failed, f"{len(failed)} of {CONCURRENT} failed, e.g. {failed[:5]}"
    assert slowest < BOUND_SECONDS, f"the slowest request took {slowest:.1f} s"


def test_a_request_over_the_in_flight_bound_is_503_with_retry_after(fresh_database_url: str, tmp_path: Path) -> None:
    env = service_env(fresh_database_url, tmp_path / "blobs", NIRVANA_MAX_IN_FLIGHT="1")
    with uvicorn_server(env, tmp_path / "api.log") as url:
        port = int(url.rsplit(":", 1)[1])
        # An upload whose body never finishes arriving holds the one place in flight.
        with socket.create_connection(("127.0.0.1", port)) as held:
            held.sendall(b"POST /api/v1/tickets HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
                         b"Content-Type: multipart/form-data; boundary=b\r\n\r\n--b\r\n")
            deadline = time.monotonic() + 30
            refused = httpx.get(f"{url}/api/v1/tasks", timeout=30)
            while refused.status_code == 200 and time.monotonic() < deadline:  # the held request not in yet
                time.sleep(0.1)
                refused = httpx.get(f"{url}/api/v1/tasks", timeout=30)
            assert refused.status_code == 503
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.json()["code"] == "overloaded" and refused.headers["retry-after"] == "1"
            assert httpx.get(f"{url}/metrics", timeout=30).status_code != 503  # never bounded
        # The held connection is gone: the place is free again.
        deadline = time.monotonic() + 30
        while httpx.get(f"{url}/api/v1/tasks", timeout=30).status_code != 200:
            assert time.monotonic() < deadline, "the in-flight place was never given back"
            time.sleep(0.1)

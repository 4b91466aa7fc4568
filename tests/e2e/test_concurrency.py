"""Under load the service degrades, never stalls: a real uvicorn with a database pool far
smaller than the number of concurrent requests answers every one of them, and a request
beyond the in-flight bound gets a quick 503 instead of a place in a queue."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from db.session import make_engine, make_sessionmaker, unit_of_work
from db.tokens import create_token
from tests.support.processes import service_env, uvicorn_server
from tests.support.tickets import make_ticket

pytestmark = pytest.mark.e2e

CONCURRENT = 200
# Generous for a shared two-core machine; the stall this guards against held requests
# for the pool's 30-s timeout and then failed them.
BOUND_SECONDS = 20.0


def _token(database_url: str) -> str:
    engine = make_engine(database_url)
    try:
        with unit_of_work(make_sessionmaker(engine)) as session:
            _, secret = create_token(session, user_name="load", token_name="load")
    finally:
        engine.dispose()
    return secret


@pytest.fixture
def seeded(fresh_database_url: str, tmp_path: Path) -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A real uvicorn with a 4-connection pool and three tickets; yields (url, tickets)."""
    env = service_env(
        fresh_database_url, tmp_path / "blobs",
        NIRVANA_DB_POOL_SIZE="4", NIRVANA_MAX_IN_FLIGHT="1000",
        NIRVANA_RATE_LIMIT_API_PER_MINUTE="0", NIRVANA_RATE_LIMIT_DOWNLOADS_PER_MINUTE="0",
    )  # fmt: skip
    auth = {"Authorization": f"Bearer {_token(fresh_database_url)}"}
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

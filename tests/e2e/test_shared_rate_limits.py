"""A rate limit holds across API processes: two real uvicorn processes on one
database (or one Redis) share each client's bucket."""

from __future__ import annotations

import uuid
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.support.processes import service_env, uvicorn_server

pytestmark = pytest.mark.e2e

LIMIT = 5


@pytest.mark.parametrize("store", ["postgres", "redis"])
def test_two_api_processes_share_one_bucket(store: str, fresh_database_url: str, tmp_path: Path) -> None:
    extra = {"NIRVANA_RATE_LIMIT_API_PER_MINUTE": str(LIMIT), "NIRVANA_RATE_LIMIT_PREFIX": f"test-{uuid.uuid4().hex}",
             "NIRVANA_RATE_LIMIT_STORE": store}  # fmt: skip
    if store == "redis":
        extra["NIRVANA_REDIS_URL"] = "redis://127.0.0.1:6379/0"
        try:
            httpx.get("http://127.0.0.1:6379", timeout=1)
        except httpx.ConnectError:
            pytest.skip("no Redis on 127.0.0.1:6379")
        except httpx.HTTPError:
            pass  # something answers there (Redis does not speak HTTP)
    env = service_env(fresh_database_url, tmp_path / "blobs", **extra)
    with ExitStack() as stack:
        urls = [stack.enter_context(uvicorn_server(env, tmp_path / f"api{i}.log")) for i in range(2)]
        # The health checks that waited for the servers spent tokens too: count them.
        statuses = [httpx.get(f"{urls[i % 2]}/api/v1/tasks", timeout=30).status_code for i in range(2 * LIMIT)]
    assert statuses.count(429) >= LIMIT and set(statuses) == {200, 429}
    # Once refused, refused everywhere: no process hands out tokens of its own.
    first_refusal = statuses.index(429)
    assert set(statuses[first_refusal:]) == {429}

"""Who a request is: a made-up token is 401 everywhere and buys no bucket of its own;
X-Forwarded-For counts only from the proxies the operator trusts."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from ipaddress import ip_network
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from api.app import create_app
from api.callers import CallerIdentity
from api.deps import get_session
from api.settings import ApiSettings
from tests.support.processes import free_port, running, service_env, wait_until_healthy


@pytest.fixture
def limited(database_url: str, db_session: Session, blob_dir: Path) -> Iterator[TestClient]:
    settings = ApiSettings(database_url=database_url, blob_dir=blob_dir, rate_limit_api_per_minute=3)
    app = create_app(settings)
    app.dependency_overrides[get_session] = lambda: db_session
    with TestClient(app) as client:
        yield client


@pytest.mark.parametrize("path", ["/api/v1/tasks", "/api/v1/health", "/api/v1/tickets", "/api/v1/tickets/" + "a" * 64])
def test_an_unknown_token_is_401_on_reads(client: TestClient, path: str) -> None:
    answer = client.get(path, headers={"Authorization": "Bearer nv_made_up"})
    assert answer.status_code == 401, answer.text
    assert answer.json()["code"] == "invalid_token"
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert client.get(path, headers={"Authorization": "Basic abc"}).status_code == 401


def test_a_valid_token_reads(client: TestClient, auth: dict[str, str]) -> None:
    assert client.get("/api/v1/tasks", headers=auth).status_code == 200


def test_random_tokens_share_the_address_bucket(limited: TestClient) -> None:
    answers = [
        limited.get("/api/v1/tasks", headers={"Authorization": f"Bearer nv_{secrets.token_urlsafe(8)}"}).status_code
        for _ in range(4)
    ]
    assert answers == [401, 401, 401, 429]
    assert limited.get("/api/v1/tasks").status_code == 429  # the same address, out of requests


def test_a_token_that_authenticated_has_its_own_bucket(limited: TestClient, token: str) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    assert limited.get("/api/v1/tasks", headers=auth).status_code == 200  # counted against the address
    assert [limited.get("/api/v1/tasks").status_code for _ in range(3)] == [200, 200, 429]
    assert [limited.get("/api/v1/tasks", headers=auth).status_code for _ in range(3)] == [200, 200, 200]


def _scope(peer: str, forwarded: str | None) -> dict[str, object]:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded is not None else []
    return {"type": "http", "client": (peer, 1234), "headers": headers}


def test_forwarded_for_counts_only_from_trusted_proxies() -> None:
    plain = CallerIdentity()
    assert plain.address(_scope("127.0.0.1", "203.0.113.9")) == "127.0.0.1"
    proxied = CallerIdentity([ip_network("10.0.0.0/8"), ip_network("127.0.0.1")])
    assert proxied.address(_scope("127.0.0.1", "203.0.113.9")) == "203.0.113.9"
    # The client may prepend anything; the hop the trusted proxies saw is the rightmost
    # untrusted one.
    assert proxied.address(_scope("127.0.0.1", "1.2.3.4, 203.0.113.9, 10.1.2.3")) == "203.0.113.9"
    assert proxied.address(_scope("198.51.100.7", "203.0.113.9")) == "198.51.100.7"  # not a proxy
    assert proxied.address(_scope("127.0.0.1", "not-an-ip")) == "127.0.0.1"
    assert proxied.key(_scope("127.0.0.1", "203.0.113.9")) == "addr:203.0.113.9"


def test_trusted_proxies_setting_parses_a_comma_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NIRVANA_TRUSTED_PROXIES", "10.0.0.2, fd00::/8")
    settings = ApiSettings(database_url="postgresql://x/y")
    assert settings.trusted_proxies == [ip_network("10.0.0.2"), ip_network("fd00::/8")]


@pytest.mark.parametrize("trusted", ["", "127.0.0.1"])
def test_nirvana_api_reads_forwarded_for_only_from_trusted_proxies(
    fresh_database_url: str, tmp_path: Path, trusted: str
) -> None:
    """The real ``nirvana api`` (uvicorn): without NIRVANA_TRUSTED_PROXIES a client on
    loopback cannot pick a fresh address per request; with it, the proxy's word counts."""
    port = free_port()
    env = service_env(
        fresh_database_url, tmp_path / "blobs", NIRVANA_RATE_LIMIT_API_PER_MINUTE="10", NIRVANA_TRUSTED_PROXIES=trusted
    )
    args = ["-m", "nirvana", "api", "--host", "127.0.0.1", "--port", str(port)]
    with running(args, env, tmp_path / "api.log") as process:
        url = f"http://127.0.0.1:{port}"
        wait_until_healthy(url, process, tmp_path / "api.log")  # spends one or more of the 10
        statuses = [
            httpx.get(f"{url}/api/v1/tasks", headers={"X-Forwarded-For": f"203.0.113.{n}"}, timeout=30).status_code
            for n in range(12)
        ]
    if trusted:
        assert statuses == [200] * 12
    else:
        assert statuses[:5] == [200] * 5 and statuses[-2:] == [429, 429]

"""``Link: rel="next"`` is built from NIRVANA_PUBLIC_URL, never from the Host header."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from api.app import create_app
from api.deps import get_session
from api.settings import ApiSettings
from tests.support.tickets import make_ticket


def _app(database_url: str, db_session: Session, blob_dir: Path, public_url: str | None) -> TestClient:
    settings = ApiSettings(database_url=database_url, blob_dir=blob_dir, max_steps=5_000, public_url=public_url)
    app = create_app(settings)
    app.dependency_overrides[get_session] = lambda: db_session
    return TestClient(app)


@pytest.fixture
def two_tickets(client: TestClient, auth: dict[str, str]) -> Iterator[None]:
    for seed in (1, 2):
        answer = client.post("/api/v1/tickets", files=make_ticket(mask_seed=seed).multipart(), headers=auth)
        assert answer.status_code == 201, answer.text
    yield


@pytest.mark.parametrize(
    "public_url, prefix",
    [(None, "</api/v1/tickets?"), ("https://nirvana.example/", "<https://nirvana.example/api/v1/tickets?")],
)
def test_the_next_link_ignores_the_host_header(
    two_tickets: None, database_url: str, db_session: Session, blob_dir: Path, public_url: str | None, prefix: str
) -> None:
    with _app(database_url, db_session, blob_dir, public_url) as client:
        answer = client.get("/api/v1/tickets?limit=1&task=digits", headers={"Host": "evil.example"})
    assert answer.status_code == 200, answer.text
    link = answer.headers["link"]
    assert link.startswith(prefix) and "evil.example" not in link, link
    assert "limit=1" in link and "task=digits" in link and link.endswith('>; rel="next"')
    target = link[1 : link.index(">")].removeprefix("https://nirvana.example")
    with _app(database_url, db_session, blob_dir, public_url) as client:
        second = client.get(target)
    assert second.status_code == 200 and len(second.json()["items"]) == 1
    assert second.json()["items"][0]["id"] != answer.json()["items"][0]["id"]

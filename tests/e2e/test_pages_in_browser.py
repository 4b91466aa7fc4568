"""The pages in a real headless Chromium against a real uvicorn and PostgreSQL."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from db.session import make_engine, make_sessionmaker, unit_of_work
from db.tokens import create_token
from tests.api.test_pages import verify_all_queued
from tests.support.browser import dump_dom, screenshot
from tests.support.processes import service_env, uvicorn_server
from tests.support.tickets import make_ticket

pytestmark = pytest.mark.e2e


def test_browse_from_tasks_to_leaderboard_to_ticket(fresh_database_url: str, tmp_path: Path) -> None:
    engine = make_engine(fresh_database_url)
    sessions = make_sessionmaker(engine)
    with unit_of_work(sessions) as session:
        _, token = create_token(session, user_name="browser", token_name="e2e")
    env = service_env(fresh_database_url, tmp_path / "blobs")
    with uvicorn_server(env, tmp_path / "api.log") as url:
        headers = {"Authorization": f"Bearer {token}"}
        ids = []
        for density, seed in ((0.2, 1), (0.5, 2)):
            response = httpx.post(f"{url}/api/v1/tickets", files=make_ticket(density=density, mask_seed=seed).multipart(),
                                  headers=headers)
            assert response.status_code == 201, response.text
            ids.append(response.json()["id"])
        with unit_of_work(sessions) as session:
            verify_all_queued(session, accuracy=0.91)

        home = dump_dom(f"{url}/")
        assert 'href="/tasks/digits"' in home
        leaderboard = dump_dom(f"{url}/tasks/digits")
        assert all(f'data-ticket="{ticket_id}"' in leaderboard for ticket_id in ids)
        assert leaderboard.count("<circle") == 2
        ticket = dump_dom(f"{url}/tickets/{ids[0][:12]}")
        assert 'data-state="succeeded"' in ticket and ticket.count("<polyline") == 4

        # The API docs render from files this server ships (no CDN).
        docs = dump_dom(f"{url}/docs")
        assert "swagger-ui" in docs and "/api/v1/tickets/{ref}/mask" in docs

        shots = Path(os.environ.get("NIRVANA_SCREENSHOTS", tmp_path))
        shots.mkdir(parents=True, exist_ok=True)
        for name, page in (("leaderboard", "/tasks/digits"), ("ticket", f"/tickets/{ids[0]}")):
            png = screenshot(f"{url}{page}", shots / f"{name}.png")
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    engine.dispose()

"""A real worker verifies a ``digits`` ticket with R = 2; the task and ticket pages show
its verdict, arms and stability in headless Chromium, at 1280 px and at 390 px."""

from __future__ import annotations

import os
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from db.session import make_engine, make_sessionmaker, unit_of_work
from db.tokens import create_token
from nirvana.client import Client
from tests.support.browser import dump_dom, screenshot
from tests.support.processes import running, service_env, uvicorn_server
from tests.support.tickets import make_ticket

pytestmark = pytest.mark.e2e


def test_worker_verdict_with_two_replicates_in_the_browser(fresh_database_url: str, tmp_path: Path) -> None:
    engine = make_engine(fresh_database_url)
    with unit_of_work(make_sessionmaker(engine)) as session:
        _, token = create_token(session, user_name="browser", token_name="e2e")
    engine.dispose()
    env = service_env(fresh_database_url, tmp_path / "blobs", NIRVANA_POLL_SECONDS="0.5",
                      NIRVANA_HEARTBEAT_SECONDS="0.5", NIRVANA_VERIFY_REPLICATES="2", NIRVANA_THREADS="1")  # fmt: skip
    with ExitStack() as stack:
        # A generous start: the server imports torch, and the test machine may be busy.
        url = stack.enter_context(uvicorn_server(env, tmp_path / "api.log", health_timeout=180))
        headers = {"Authorization": f"Bearer {token}"}
        response = httpx.post(f"{url}/api/v1/tickets", files=make_ticket(density=0.5, steps=60, claimed=0.5).multipart(),
                              headers=headers, timeout=120)  # fmt: skip
        assert response.status_code == 201, response.text
        ticket = response.json()
        queued = dump_dom(f"{url}/tickets/{ticket['id']}")
        assert 'http-equiv="refresh"' in queued and "<progress" in queued  # refreshes itself until done
        stack.enter_context(running(["-m", "worker"], env, tmp_path / "worker.log"))
        with httpx.Client(base_url=url, timeout=30) as http:
            with Client(url=url, token=token) as client:
                done = client.wait(ticket["id"], timeout=600, progress=False)
            assert done.state.value == "succeeded", (tmp_path / "worker.log").read_text()
            result = done.result
            assert result is not None
            assert result["schema"] == 2 and result["replicates"] == 2 and not result["single_replicate"]
            assert all(result["arms"][arm]["test_accuracy"]["n"] == 2 for arm in result["arms"])
            assert result["instability"] is not None and result["reasons"]
            stored = http.get(f"/api/v1/tickets/{ticket['id']}").json()
            assert stored["verdict"] == result["verdict"]

        page = dump_dom(f"{url}/tickets/{ticket['id']}")
        assert 'http-equiv="refresh"' not in page
        assert f'class="verdict-badge {result["verdict"]}"' in page and 'id="instability"' in page
        mean, std = (result["arms"]["ticket"]["early_stop_test_accuracy"][k] for k in ("mean", "std"))
        assert f"{100 * mean:.2f} ± {100 * std:.2f}%" in page
        assert all(reason in page for reason in result["reasons"])
        board = dump_dom(f"{url}/tasks/digits")
        assert f'data-ticket="{ticket["id"]}" data-status="{result["verdict"]}"' in board
        assert f'class="point {result["verdict"]}"' in board

        # The leaderboard and the ticket's tables sit in boxes that scroll on a phone.
        assert '<div class="table-scroll">' in board and '<div class="table-scroll">' in page
        shots = Path(os.environ.get("NIRVANA_SCREENSHOTS", tmp_path))
        shots.mkdir(parents=True, exist_ok=True)
        for width in (1280, 390):
            for name, path in (("task", "/tasks/digits"), ("ticket", f"/tickets/{ticket['id']}")):
                png = screenshot(f"{url}{path}", shots / f"verdict-{name}-{width}.png", width=width)
                assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

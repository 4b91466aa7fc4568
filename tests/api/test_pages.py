"""The HTML pages, rendered by the app: tasks, a task's leaderboard and chart, a ticket."""

from __future__ import annotations


from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from db.queue import claim_next, finish
from tests.support.tickets import make_ticket


def _verified_result(accuracy: float) -> dict:
    curve = [[0, 0.1], [30, accuracy - 0.05], [60, accuracy]]
    runs = {name: {"test_accuracy": accuracy - i * 0.1, "curve": curve, "density": 0.5, "seconds": 1.0}
            for i, name in enumerate(("ticket", "dense", "reinit", "random_mask"))}
    runs["dense"]["test_accuracy"] = accuracy
    return {"runs": runs, "reproduced": True, "winning": True, "tolerance": 0.02, "claimed_accuracy": accuracy,
            "device": "cpu", "torch_version": "test", "dataset_fingerprint": "x", "task": "digits", "recipe": {}}


def verify_all_queued(session: Session, accuracy: float = 0.9) -> None:
    """Run the queue's real claim/finish path with a recorded result (no training)."""
    while (claim := claim_next(session, worker_id="pages-test", lease_seconds=60)) is not None:
        finish(session, claim.verification_id, claim.lease_token, state="succeeded", result=_verified_result(accuracy))
    session.flush()


def test_tasks_page_lists_tasks_with_ticket_counts(client: TestClient, auth: dict[str, str]) -> None:
    client.post("/api/v1/tickets", files=make_ticket().multipart(), headers=auth)
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<tr data-task="digits">' in page.text
    digits_row = page.text.split('<tr data-task="digits">')[1].split("</tr>")[0]
    assert '<td class="num ticket-count">1</td>' in digits_row


def test_task_page_shows_leaderboard_and_chart(client: TestClient, auth: dict[str, str], db_session: Session) -> None:
    first = client.post("/api/v1/tickets", files=make_ticket(density=0.3).multipart(), headers=auth).json()
    verify_all_queued(db_session)
    second = client.post("/api/v1/tickets", files=make_ticket(density=0.6, mask_seed=5).multipart(), headers=auth).json()
    page = client.get("/tasks/digits").text
    assert page.index(first["id"]) < page.index(second["id"])  # sparsest first
    assert page.count('class="point winning"') == 1 and page.count('class="point pending"') == 1
    verified_only = client.get("/tasks/digits", params={"verified": "true"}).text
    assert first["id"] in verified_only and second["id"] not in verified_only


def test_ticket_page_shows_runs_curves_and_downloads(client: TestClient, auth: dict[str, str], db_session: Session) -> None:
    ticket = client.post("/api/v1/tickets", files=make_ticket().multipart(), headers=auth).json()
    before = client.get(f"/tickets/{ticket['short_id']}").text
    assert 'data-state="queued"' in before and "not yet" in before
    verify_all_queued(db_session, accuracy=0.93)
    page = client.get(f"/tickets/{ticket['id']}").text
    assert 'data-state="succeeded"' in page
    assert all(f'data-run="{run}"' in page for run in ("ticket", "reinit", "random_mask", "dense"))
    assert page.count('class="curve"') == 4
    assert f'/api/v1/tickets/{ticket["id"]}/mask' in page
    assert "93.00%" in page


def test_unknown_pages_are_404_html(client: TestClient) -> None:
    for url in ("/tasks/imagenet", "/tickets/" + "f" * 64, "/tickets/xyz"):
        response = client.get(url)
        assert response.status_code == 404 and "Not found" in response.text, url

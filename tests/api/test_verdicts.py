"""Verdicts through the API: a ticket's ``verdict``, the ``verdict`` filter, every sort
(``rank`` included) with keyset pages, 4xx problems for unknown filter values, result
schemas 1 and 2 side by side, and the task and ticket pages that show them."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from db.queue import claim_next, finish
from tests.support.results import schema2_result
from tests.support.tickets import make_ticket


def upload(client: TestClient, auth: dict[str, str], **kwargs: Any) -> dict[str, Any]:
    response = client.post("/api/v1/tickets", files=make_ticket(**kwargs).multipart(), headers=auth)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def finish_next(session: Session, result: dict[str, Any] | None, state: str = "succeeded") -> None:
    claim = claim_next(session, worker_id="verdicts-test", lease_seconds=60)
    assert claim is not None
    finish(session, claim.verification_id, claim.lease_token, state=state, result=result,
           error=None if state == "succeeded" else "boom")  # fmt: skip
    session.flush()


@pytest.fixture
def board(client: TestClient, auth: dict[str, str], db_session: Session) -> dict[str, str]:
    """Five tickets on digits, one per status, uploaded and finished in this order."""
    ids: dict[str, str] = {}
    for name, density, result in [
        ("win_dense", 0.6, schema2_result("winning", 0.91, density=0.6)),
        ("not_reproduced", 0.1, schema2_result("not_reproduced", 0.101, density=0.1)),
        ("win_sparse", 0.2, schema2_result("winning", 0.905, density=0.2)),
        ("not_winning", 0.05, schema2_result("not_winning", 0.626, dense=0.919, density=0.05)),
    ]:
        ids[name] = upload(client, auth, density=density, mask_seed=len(ids), title=name)["id"]
        finish_next(db_session, result)
    ids["pending"] = upload(client, auth, density=0.3, mask_seed=9, title="pending")["id"]
    return ids


def listed(client: TestClient, **params: Any) -> list[str]:
    response = client.get("/api/v1/tickets", params=params)
    assert response.status_code == 200, response.text
    return [t["id"] for t in response.json()["items"]]


def test_ticket_json_carries_its_latest_verdict(client: TestClient, board: dict[str, str]) -> None:
    verdicts = {name: client.get(f"/api/v1/tickets/{tid}").json()["verdict"] for name, tid in board.items()}
    assert verdicts == {"win_dense": "winning", "not_reproduced": "not_reproduced", "win_sparse": "winning",
                        "not_winning": "not_winning", "pending": None}  # fmt: skip
    stored = client.get(f"/api/v1/tickets/{board['win_sparse']}").json()
    result = stored["verifications"][0]["result"]
    assert result["schema"] == 2 and result["arms"]["ticket"]["early_stop_test_accuracy"]["n"] == 2
    assert stored["verified_accuracy"] == pytest.approx(0.905) and stored["winning"] is True


def test_verdict_filter(client: TestClient, board: dict[str, str]) -> None:
    assert set(listed(client, verdict="winning")) == {board["win_dense"], board["win_sparse"]}
    assert listed(client, verdict="not_winning") == [board["not_winning"]]
    assert listed(client, verdict="not_reproduced") == [board["not_reproduced"]]
    assert listed(client, verdict="pending") == [board["pending"]]
    assert listed(client, verdict="winning", task="digits", arch="lenet_32_16")


def test_rank_puts_winning_first_sparsest_first(client: TestClient, board: dict[str, str]) -> None:
    order = ["win_sparse", "win_dense", "not_winning", "pending", "not_reproduced"]
    assert listed(client, sort="rank") == [board[n] for n in order]
    # Keyset pages of two follow the same order.
    pages, cursor = [], None
    while True:
        params: dict[str, str | int] = {"sort": "rank", "limit": 2, **({"cursor": cursor} if cursor else {})}
        body = client.get("/api/v1/tickets", params=params).json()
        pages += [t["id"] for t in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert pages == [board[n] for n in order]


@pytest.mark.parametrize("sort, key, reverse", [
    ("sparsity", "sparsity", False), ("-sparsity", "sparsity", True), ("accuracy", "accuracy", False),
    ("-accuracy", "accuracy", True), ("created", "created_at", False), ("-created", "created_at", True),
])  # fmt: skip
def test_every_sort_orders_and_pages(client: TestClient, board: dict[str, str], sort: str, key: str, reverse: bool) -> None:
    items = client.get("/api/v1/tickets", params={"sort": sort}).json()["items"]
    values = [t[key] for t in items]
    assert len(items) == 5 and values == sorted(values, reverse=reverse)
    first = client.get("/api/v1/tickets", params={"sort": sort, "limit": 3}).json()
    rest = client.get("/api/v1/tickets", params={"sort": sort, "cursor": first["next_cursor"]}).json()
    assert [t["id"] for t in first["items"] + rest["items"]] == [t["id"] for t in items]


@pytest.mark.parametrize("params, code", [
    ({"verdict": "great"}, "invalid_verdict"),
    ({"task": "imagenet"}, "unknown_task"),
    ({"arch": "transformer"}, "unknown_architecture"),
    ({"arch": "lenet_x"}, "unknown_architecture"),
    ({"sort": "best"}, "invalid_sort"),
])  # fmt: skip
def test_unknown_filter_values_are_problems(client: TestClient, board: dict[str, str], params: dict[str, str], code: str) -> None:
    response = client.get("/api/v1/tickets", params=params)
    assert 400 <= response.status_code < 500
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code


def test_a_cursor_of_one_sort_is_refused_by_another(client: TestClient, board: dict[str, str]) -> None:
    cursor = client.get("/api/v1/tickets", params={"sort": "rank", "limit": 1}).json()["next_cursor"]
    response = client.get("/api/v1/tickets", params={"sort": "-created", "cursor": cursor})
    assert response.status_code == 400 and response.json()["code"] == "invalid_cursor"


def test_task_page_ranks_and_colours_verdicts(client: TestClient, board: dict[str, str], db_session: Session,
                                              auth: dict[str, str]) -> None:  # fmt: skip
    failed = upload(client, auth, density=0.4, mask_seed=11, title="failed")["id"]
    for _ in range(3):  # up to max_attempts: each failure is final here
        claim = claim_next(db_session, worker_id="verdicts-test", lease_seconds=60)
        if claim is None:
            break
        finish(db_session, claim.verification_id, claim.lease_token, state="failed", error="boom")
    db_session.flush()
    page = client.get("/tasks/digits").text
    rows = page.split('<table id="leaderboard">')[1]
    assert rows.index(board["win_sparse"]) < rows.index(board["win_dense"]) < rows.index(board["not_winning"])
    assert rows.index(board["not_winning"]) < rows.index(board["pending"]) < rows.index(board["not_reproduced"])
    for status in ("winning", "not_winning", "not_reproduced", "pending"):
        assert f'<span class="verdict-badge {status}">' in rows and f'class="point {status}"' in page
    assert f'data-ticket="{failed}" data-status="failed"' in rows
    refuted = rows.split(f'data-ticket="{board["not_reproduced"]}"')[1].split("</tr>")[0]
    assert "not reproduced" in refuted and "claimed" not in refuted
    assert "lenet_32_16: the smallest winning ticket: 20.0% of the weights at 90.5% accuracy (dense 92.0%)" in page
    assert 'class="dense-band"' in page and page.count('class="frontier"') == 1
    assert '<div class="table-scroll">' in page


def test_ticket_page_shows_arms_reasons_stability_and_refreshes_while_running(
    client: TestClient, auth: dict[str, str], db_session: Session
) -> None:
    ticket = upload(client, auth)
    queued = client.get(f"/tickets/{ticket['id']}").text
    assert '<meta http-equiv="refresh"' in queued and "<progress" in queued
    finish_next(db_session, schema2_result("not_winning", 0.776, replicates=3))
    page = client.get(f"/tickets/{ticket['id']}").text
    assert '<meta http-equiv="refresh"' not in page
    assert '<span id="ticket-verdict" class="verdict-badge not_winning">not winning</span>' in page
    assert "77.60 ± 0.20%" in page  # the ticket arm, mean ± std over 3 replicates
    assert "hand-made: not_winning" in page and 'id="instability">1.30 points' in page
    assert page.count('class="curve"') == 4 and "(mean over replicates)" in page
    assert "10.00%" in page  # accuracy at init


def test_schema_1_results_stay_readable(client: TestClient, auth: dict[str, str], db_session: Session) -> None:
    ticket = upload(client, auth)
    old = {"runs": {name: {"test_accuracy": 0.9, "curve": [[0, 0.1], [60, 0.9]], "density": 0.5, "seconds": 1.0}
                    for name in ("ticket", "reinit", "random_mask", "dense")},
           "reproduced": True, "winning": False, "tolerance": 0.02, "claimed_accuracy": 0.9, "device": "cpu",
           "torch_version": "old", "dataset_fingerprint": "x", "task": "digits", "recipe": {}}  # fmt: skip
    finish_next(db_session, old)
    stored = client.get(f"/api/v1/tickets/{ticket['id']}").json()
    assert stored["verdict"] == "not_winning" and stored["verifications"][0]["result"]["schema"] == 1
    page = client.get(f"/tickets/{ticket['id']}").text
    assert "result schema 1" in page and page.count('class="curve"') == 4

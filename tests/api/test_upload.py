"""Uploading tickets: created once, verification queued, sparsity computed server-side."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from nirvana.lottery.tickets.files import load_tensors
from tests.api.conftest import stored_counts
from tests.support.tickets import make_ticket


def test_upload_creates_ticket_and_queues_one_verification(
    client: TestClient, auth: dict[str, str], db_session: Session, blob_dir: Path
) -> None:
    files = make_ticket(density=0.25)
    response = client.post("/api/v1/tickets", files=files.multipart(), headers=auth)
    assert response.status_code == 201, response.text
    body = response.json()
    assert len(body["id"]) == 64 and body["short_id"] == body["id"][:12]
    assert response.headers["location"] == f"/api/v1/tickets/{body['id']}"
    assert [v["state"] for v in body["verifications"]] == ["queued"]
    expected_remaining = sum(int(m.sum()) for m in files.mask.values())
    assert body["remaining"] == expected_remaining
    assert body["prunable"] == sum(m.numel() for m in files.mask.values())
    assert abs(body["sparsity"] - (1 - expected_remaining / body["prunable"])) < 1e-9
    assert set(body["layers"]) == set(files.mask)
    assert body["submitter"] == "alice"
    assert stored_counts(db_session, blob_dir) == (1, 1, 4, 4)  # mask and init, dense and compact


def test_same_ticket_twice_answers_200_and_creates_nothing(
    client: TestClient, auth: dict[str, str], db_session: Session, blob_dir: Path
) -> None:
    files = make_ticket()
    first = client.post("/api/v1/tickets", files=files.multipart(), headers=auth)
    # The same tensors with the init uploaded explicitly are the same ticket.
    second = client.post("/api/v1/tickets", files=files.multipart(with_init=True), headers=auth)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]
    assert stored_counts(db_session, blob_dir) == (1, 1, 4, 4)  # mask and init, dense and compact


def test_seed_only_init_is_generated_stored_and_served(client: TestClient, auth: dict[str, str]) -> None:
    files = make_ticket(seed=7)
    ticket = client.post("/api/v1/tickets", files=files.multipart(), headers=auth).json()
    init = load_tensors(client.get(ticket["links"]["init"]).content)
    assert set(init) == set(files.init)
    assert all((init[name] == files.init[name]).all() for name in init)


def test_prefix_lookup_and_not_found(client: TestClient, auth: dict[str, str]) -> None:
    ticket = client.post("/api/v1/tickets", files=make_ticket().multipart(), headers=auth).json()
    assert client.get(f"/api/v1/tickets/{ticket['id'][:12]}").json()["id"] == ticket["id"]
    short = client.get(f"/api/v1/tickets/{ticket['id'][:11]}")
    assert (short.status_code, short.json()["code"]) == (422, "invalid_ticket_id")
    missing = client.get("/api/v1/tickets/" + "0" * 64)
    assert (missing.status_code, missing.json()["code"]) == (404, "ticket_not_found")
    assert missing.headers["content-type"] == "application/problem+json"

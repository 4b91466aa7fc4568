"""Reading and cancelling verifications through the API."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient

from tests.support.tickets import make_ticket


def test_read_and_cancel_a_queued_verification(client: TestClient, auth: dict[str, str]) -> None:
    ticket = client.post("/api/v1/tickets", files=make_ticket().multipart(), headers=auth).json()
    verification_id = ticket["verifications"][0]["id"]
    body = client.get(f"/api/v1/verifications/{verification_id}").json()
    assert body["state"] == "queued" and body["attempts"] == 0 and body["ticket_id"] == ticket["id"]
    assert client.post(f"/api/v1/verifications/{verification_id}/cancel").status_code == 401
    cancelled = client.post(f"/api/v1/verifications/{verification_id}/cancel", headers=auth).json()
    assert cancelled["state"] == "cancelled" and cancelled["finished_at"] is not None


def test_unknown_verification_is_404(client: TestClient) -> None:
    response = client.get(f"/api/v1/verifications/{uuid.uuid4()}")
    assert (response.status_code, response.json()["code"]) == (404, "verification_not_found")
    malformed = client.get("/api/v1/verifications/not-a-uuid")
    assert (malformed.status_code, malformed.json()["code"]) == (422, "validation_error")

"""Reading and cancelling verifications through the API."""

from __future__ import annotations

import uuid
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.deps import get_settings
from api.schemas.verifications import VerificationRead
from nirvana.states import VerificationState

from tests.support.datasets import write_idx_set
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


def _verify_token(db_session) -> dict[str, str]:  # type: ignore[no-untyped-def]
    from db.tokens import create_token

    _, secret = create_token(db_session, user_name="carol", token_name="v", scopes=("read", "write", "verify"))
    return {"Authorization": f"Bearer {secret}"}


def test_transfer_verification_is_queued_on_another_task(client: TestClient, auth: dict[str, str], db_session) -> None:  # type: ignore[no-untyped-def]
    files = make_ticket(architecture="lenet_32_16", task="fashion-mnist")
    ticket = client.post("/api/v1/tickets", files=files.multipart(), headers=auth).json()
    verify = _verify_token(db_session)
    body = {"task": "mnist", "recipe": {"optimizer": "adam", "lr": 0.001, "batch_size": 60, "steps": 100}}
    no_scope = client.post(f"/api/v1/tickets/{ticket['id']}/verifications", json=body, headers=auth)
    assert (no_scope.status_code, no_scope.json()["code"]) == (403, "insufficient_scope")

    # mnist's data is absent here (only Fashion-MNIST ships as a Debian package).
    absent = client.post(f"/api/v1/tickets/{ticket['id']}/verifications", json=body, headers=verify)
    assert (absent.status_code, absent.json()["code"]) == (409, "task_unavailable")

    misfit = client.post(f"/api/v1/tickets/{ticket['id']}/verifications", json={"task": "digits"}, headers=verify)
    assert (misfit.status_code, misfit.json()["code"]) == (422, "incompatible_task")
    assert "fc1.weight" in misfit.json()["detail"]

    own_task = client.post(f"/api/v1/tickets/{ticket['id']}/verifications", json={"task": "fashion-mnist"}, headers=verify)
    assert (own_task.status_code, own_task.json()["code"]) == (409, "same_task")


def test_transfer_between_tasks_of_the_same_shape(
    client: TestClient, auth: dict[str, str], db_session, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    # Fashion-MNIST and MNIST share their input shape: a ticket of one runs on the other.
    write_idx_set(tmp_path / "mnist", n_train=20, n_test=10)
    app = client.app
    assert isinstance(app, FastAPI)
    settings = app.state.settings.model_copy(update={"data_dir": tmp_path})  # the server's data directory
    app.dependency_overrides[get_settings] = lambda: settings
    files = make_ticket(architecture="lenet_32_16", task="fashion-mnist")
    ticket = client.post("/api/v1/tickets", files=files.multipart(), headers=auth).json()
    recipe = {"optimizer": "adam", "lr": 0.001, "batch_size": 60, "steps": 100}
    response = client.post(
        f"/api/v1/tickets/{ticket['id']}/verifications",
        json={"task": "mnist", "recipe": recipe, "claimed_accuracy": 0.5},
        headers=_verify_token(db_session),
    )
    assert response.status_code == 202, response.text
    queued = response.json()
    assert (queued["task"], queued["state"], queued["recipe"]["steps"], queued["claimed_accuracy"]) == ("mnist", "queued", 100, 0.5)
    assert response.headers["location"] == f"/api/v1/verifications/{queued['id']}"
    detail = client.get(f"/api/v1/tickets/{ticket['id']}").json()
    assert [v["task"] for v in detail["verifications"]] == ["fashion-mnist", "mnist"]


def test_the_state_is_an_enum_in_the_schema() -> None:
    schema = VerificationRead.model_json_schema()
    state = schema["$defs"]["VerificationState"]
    assert state["enum"] == [s.value for s in VerificationState] == ["queued", "running", "succeeded", "failed", "cancelled"]

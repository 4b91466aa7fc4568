"""Who may cancel a verification and queue it again: the ticket's uploader, whoever
queued it, and admins; everyone else gets 403 ``not_owner``."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session

from db.models.verifications import Verification
from db.tokens import create_token
from tests.support.datasets import write_idx_set
from tests.support.tickets import make_ticket

PROBLEM = "application/problem+json"


def _bearer(session: Session, user: str, *scopes: str) -> dict[str, str]:
    _, secret = create_token(session, user_name=user, token_name="t", scopes=scopes)
    return {"Authorization": f"Bearer {secret}"}


def _upload(client: TestClient, auth: dict[str, str], **kwargs: str) -> dict:  # type: ignore[type-arg]
    response = client.post("/api/v1/tickets", files=make_ticket(**kwargs).multipart(), headers=auth)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def _cancel(client: TestClient, verification_id: str, auth: dict[str, str]):  # type: ignore[no-untyped-def]
    return client.post(f"/api/v1/verifications/{verification_id}/cancel", headers=auth)


def _again(client: TestClient, ticket: dict, auth: dict[str, str], **extra: object):  # type: ignore[no-untyped-def,type-arg]
    return client.post(f"/api/v1/tickets/{ticket['id']}/verifications", json={"task": ticket["task"], **extra}, headers=auth)


def test_another_users_write_token_cannot_cancel_and_the_verification_stays_queued(
    client: TestClient, auth: dict[str, str], db_session: Session
) -> None:
    ticket = _upload(client, auth)
    verification_id = ticket["verifications"][0]["id"]
    stranger = _bearer(db_session, "bob", "read", "write", "verify")
    refused = _cancel(client, verification_id, stranger)
    assert (refused.status_code, refused.json()["code"]) == (403, "not_owner")
    assert refused.headers["content-type"] == PROBLEM
    assert client.get(f"/api/v1/verifications/{verification_id}").json()["state"] == "queued"


def test_the_uploader_and_an_admin_may_cancel(client: TestClient, auth: dict[str, str], db_session: Session) -> None:
    first, second = _upload(client, auth, seed=1), _upload(client, auth, seed=2)
    mine = _cancel(client, first["verifications"][0]["id"], auth)
    assert (mine.status_code, mine.json()["state"]) == (200, "cancelled")
    admin = _bearer(db_session, "root", "admin")
    theirs = _cancel(client, second["verifications"][0]["id"], admin)
    assert (theirs.status_code, theirs.json()["state"]) == (200, "cancelled")


def test_whoever_queued_a_transfer_and_the_uploader_may_cancel_it_but_no_one_else(
    client: TestClient, auth: dict[str, str], db_session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_idx_set(tmp_path / "mnist", n_train=20, n_test=10)
    settings = client.app.state.settings.model_copy(update={"data_dir": tmp_path})  # type: ignore[attr-defined]
    monkeypatch.setattr(client.app.state, "settings", settings)  # type: ignore[attr-defined]
    ticket = _upload(client, auth, architecture="lenet_32_16", task="fashion-mnist")
    carol = _bearer(db_session, "carol", "read", "verify")  # a verify token may cancel what it queued
    bob = _bearer(db_session, "bob", "read", "write", "verify")
    transfers = []
    for _ in range(2):
        body = {"task": "mnist", "recipe": {"optimizer": "adam", "lr": 0.001, "batch_size": 60, "steps": 100}}
        queued = client.post(f"/api/v1/tickets/{ticket['id']}/verifications", json=body, headers=carol)
        assert queued.status_code == 202, queued.text
        transfers.append(queued.json()["id"])
    assert _cancel(client, transfers[0], bob).json()["code"] == "not_owner"
    assert _cancel(client, transfers[0], carol).json()["state"] == "cancelled"
    assert _cancel(client, transfers[1], auth).json()["state"] == "cancelled"
    # Carol queued a transfer, not the ticket: its own verification is not hers to cancel.
    assert _cancel(client, ticket["verifications"][0]["id"], carol).json()["code"] == "not_owner"


def test_a_cancelled_verification_is_queued_again_by_its_uploader_and_the_history_keeps_both(
    client: TestClient, auth: dict[str, str], db_session: Session
) -> None:
    ticket = _upload(client, auth)
    first = ticket["verifications"][0]["id"]
    pending = _again(client, ticket, auth)
    assert (pending.status_code, pending.json()["code"]) == (409, "same_task")
    _cancel(client, first, auth)

    again = _again(client, ticket, auth)
    assert again.status_code == 202, again.text
    body = again.json()
    assert (body["task"], body["state"], body["attempts"]) == (ticket["task"], "queued", 0)
    assert body["recipe"] == ticket["verifications"][0]["recipe"]
    assert body["claimed_accuracy"] == ticket["verifications"][0]["claimed_accuracy"]
    assert again.headers["location"] == f"/api/v1/verifications/{body['id']}"
    history = client.get(f"/api/v1/tickets/{ticket['id']}").json()["verifications"]
    assert [(v["id"], v["state"]) for v in history] == [(first, "cancelled"), (body["id"], "queued")]
    twice = _again(client, ticket, auth)
    assert (twice.status_code, twice.json()["code"]) == (409, "same_task")


def test_only_the_uploader_or_an_admin_may_queue_a_ticket_again_and_only_on_its_own_terms(
    client: TestClient, auth: dict[str, str], db_session: Session
) -> None:
    ticket = _upload(client, auth)
    _cancel(client, ticket["verifications"][0]["id"], auth)
    stranger = _again(client, ticket, _bearer(db_session, "bob", "read", "write", "verify"))
    assert (stranger.status_code, stranger.json()["code"]) == (403, "not_owner")
    assert stranger.headers["content-type"] == PROBLEM
    terms = _again(client, ticket, auth, claimed_accuracy=0.99)
    assert (terms.status_code, terms.json()["code"]) == (422, "own_terms")
    read_only = _again(client, ticket, _bearer(db_session, "alice", "read"))
    assert (read_only.status_code, read_only.json()["code"]) == (403, "insufficient_scope")
    admin = _again(client, ticket, _bearer(db_session, "root", "admin"))
    assert (admin.status_code, admin.json()["state"]) == (202, "queued")


def test_a_failed_verification_may_run_again_but_a_succeeded_one_may_not(
    client: TestClient, auth: dict[str, str], db_session: Session
) -> None:
    ticket = _upload(client, auth)
    first = ticket["verifications"][0]["id"]
    db_session.execute(update(Verification).where(Verification.id == first).values(state="failed", error="gave up"))
    again = _again(client, ticket, auth)
    assert again.status_code == 202, again.text
    db_session.execute(update(Verification).where(Verification.id == again.json()["id"]).values(state="succeeded"))
    done = _again(client, ticket, auth)
    assert (done.status_code, done.json()["code"]) == (409, "same_task")
    assert "succeeded" in done.json()["detail"]

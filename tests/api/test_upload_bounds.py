"""Uploads cost what their architecture costs: headers and entry counts bounded before
parsing, milestone lists bounded, compute bounded by steps x batch size, and
validation off the threads that serve other clients."""

from __future__ import annotations

import json
import struct
import threading
from pathlib import Path
from typing import Any

import anyio.to_thread
import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from nirvana.lottery.errors import InvalidRecipeError, InvalidSafetensorsError
from nirvana.lottery.tickets.files import FileBounds, parse_header
from nirvana.lottery.training.recipes import Recipe, check_compute
from tests.api.conftest import stored_counts
from tests.support.tickets import make_ticket


def _safetensors(entries: int, *, metadata: str = "") -> bytes:
    header: dict[str, Any] = {f"t{i}": {"dtype": "BOOL", "shape": [1], "data_offsets": [0, 1]} for i in range(entries)}
    if metadata:
        header["__metadata__"] = {"note": metadata}
    raw = json.dumps(header, separators=(",", ":")).encode()
    return struct.pack("<Q", len(raw)) + raw + b"\x01"


def _upload_mask(client: TestClient, auth: dict[str, str], data: bytes) -> httpx.Response:
    files = make_ticket().multipart()
    files["mask"] = ("mask.safetensors", data, "application/octet-stream")
    return client.post("/api/v1/tickets", files=files, headers=auth)


@pytest.mark.parametrize(
    "data, detail",
    [
        (_safetensors(20_000), "this architecture needs"),  # 1.1 MB of header, 20,000 entries
        (_safetensors(1, metadata="x" * 500_000), "this architecture needs"),
        (_safetensors(50), "50 tensors where this architecture has 6"),  # small, but too many
    ],
)
def test_a_mask_beyond_its_architecture_is_refused_before_parsing(
    client: TestClient, auth: dict[str, str], db_session: Session, blob_dir: Path, data: bytes, detail: str
) -> None:
    answer = _upload_mask(client, auth, data)
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == "invalid_safetensors" and detail in answer.json()["detail"]
    assert stored_counts(db_session, blob_dir) == (0, 0, 0, 0)


def test_the_header_size_is_checked_before_the_json() -> None:
    bounds = FileBounds.for_tensors([("fc.weight", 10)])
    garbage = b"\xff" * (bounds.header_bytes + 1)  # not even UTF-8: never decoded
    with pytest.raises(InvalidSafetensorsError, match="exceeds the .* bytes this architecture needs"):
        parse_header(struct.pack("<Q", len(garbage)) + garbage, bounds)
    big_body = _safetensors(1) + b"\x00" * (bounds.file_bytes)
    with pytest.raises(InvalidSafetensorsError, match="bytes this architecture needs"):
        parse_header(big_body, bounds)
    assert set(parse_header(_safetensors(1), bounds)) == {"t0"}


def test_a_milestone_list_is_bounded(client: TestClient, auth: dict[str, str], db_session: Session, blob_dir: Path) -> None:
    ticket = make_ticket()
    ticket.manifest["recipe"].update(schedule="step", milestones=list(range(1, 1001)))
    answer = client.post("/api/v1/tickets", files=ticket.multipart(), headers=auth)
    assert answer.status_code == 422 and answer.json()["code"] == "invalid_manifest", answer.text
    assert "milestones" in answer.json()["detail"]
    assert stored_counts(db_session, blob_dir) == (0, 0, 0, 0)


def test_compute_is_bounded_by_steps_times_batch_size(
    client: TestClient, auth: dict[str, str], db_session: Session, blob_dir: Path
) -> None:
    ticket = make_ticket(steps=5_000)  # within the test server's 5,000 steps
    ticket.manifest["recipe"]["batch_size"] = 65536
    answer = client.post("/api/v1/tickets", files=ticket.multipart(), headers=auth)
    assert answer.status_code == 422 and answer.json()["code"] == "invalid_recipe", answer.text
    assert "65536" in answer.json()["detail"]
    assert stored_counts(db_session, blob_dir) == (0, 0, 0, 0)


def test_the_issue_recipe_is_refused_at_the_default_bounds() -> None:
    with pytest.raises(InvalidRecipeError, match="examples"):
        check_compute(Recipe(lr=0.1, batch_size=65536, steps=100_000), max_steps=100_000)
    check_compute(Recipe(lr=0.1, batch_size=128, steps=62_560), max_steps=100_000)  # openlth-resnet20


def test_a_transfer_is_bounded_by_steps_times_batch_size(client: TestClient, db_session: Session) -> None:
    from db.tokens import create_token

    _, secret = create_token(db_session, user_name="vera", token_name="t", scopes=("read", "write", "verify"))
    auth = {"Authorization": f"Bearer {secret}"}
    ticket = client.post("/api/v1/tickets", files=make_ticket().multipart(), headers=auth).json()
    recipe = {"optimizer": "adam", "lr": 0.001, "batch_size": 65536, "steps": 1000}
    answer = client.post(f"/api/v1/tickets/{ticket['id']}/verifications", json={"task": "mnist", "recipe": recipe}, headers=auth)
    assert answer.status_code == 422 and answer.json()["code"] == "invalid_recipe", answer.text


def test_uploads_waiting_for_validation_hold_no_request_thread(client: TestClient, auth: dict[str, str]) -> None:
    """With every validation slot taken and one request thread in all, an upload waits
    for its turn while another client's read is served; then the upload completes."""
    portal = client.portal
    assert portal is not None
    app: Any = client.app
    limiter = app.state.validation_limiter
    borrowers = [object() for _ in range(int(limiter.total_tokens))]
    for borrower in borrowers:
        portal.call(limiter.acquire_on_behalf_of, borrower)
    threads = portal.call(anyio.to_thread.current_default_thread_limiter)
    saved = threads.total_tokens
    threads.total_tokens = 1
    try:
        uploaded: list[httpx.Response] = []
        upload = threading.Thread(
            target=lambda: uploaded.append(client.post("/api/v1/tickets", files=make_ticket().multipart(), headers=auth))
        )
        upload.start()
        _wait_for(lambda: portal.call(limiter.statistics).tasks_waiting == 1)
        read: list[int] = []
        reader = threading.Thread(target=lambda: read.append(client.get("/api/v1/tasks").status_code))
        reader.start()
        reader.join(timeout=60)
        assert read == [200] and upload.is_alive()
    finally:
        for borrower in borrowers:
            portal.call(limiter.release_on_behalf_of, borrower)
        upload.join(timeout=120)
        threads.total_tokens = saved
    assert uploaded and uploaded[0].status_code == 201, uploaded


def _wait_for(condition: Any, timeout: float = 60) -> None:
    done = threading.Event()
    deadline = threading.Timer(timeout, done.set)
    deadline.start()
    try:
        while not condition():
            assert not done.is_set(), "condition not reached"
            done.wait(0.05)
    finally:
        deadline.cancel()

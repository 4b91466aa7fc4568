"""Every bad upload gets a 4xx problem+json with a stable code and stores nothing."""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from nirvana.lottery.tickets.files import dump_tensors
from tests.api.conftest import stored_counts
from tests.support.tickets import TicketFiles, make_ticket

Files = dict[str, tuple[str, bytes, str]]


def _replace(files: Files, part: str, data: bytes) -> Files:
    name, _, kind = files[part]
    return {**files, part: (name, data, kind)}


def _manifest(change: Callable[[dict], None]) -> Callable[[TicketFiles], Files]:
    def build(ticket: TicketFiles) -> Files:
        manifest = json.loads(json.dumps(ticket.manifest))
        change(manifest)
        return _replace(ticket.multipart(), "manifest", json.dumps(manifest).encode())

    return build


def _mask(change: Callable[[dict[str, torch.Tensor]], None]) -> Callable[[TicketFiles], Files]:
    def build(ticket: TicketFiles) -> Files:
        mask = dict(ticket.mask)
        change(mask)
        return _replace(ticket.multipart(), "mask", dump_tensors(mask))

    return build


def _init(change: Callable[[dict[str, torch.Tensor]], None]) -> Callable[[TicketFiles], Files]:
    def build(ticket: TicketFiles) -> Files:
        init = {k: v.clone() for k, v in ticket.init.items()}
        change(init)
        return {**ticket.multipart(), "init": ("init.safetensors", dump_tensors(init), "application/octet-stream")}

    return build


def _raw_mask(data: Callable[[bytes], bytes]) -> Callable[[TicketFiles], Files]:
    return lambda ticket: _replace(ticket.multipart(), "mask", data(ticket.mask_bytes()))


def _pickled(ticket: TicketFiles) -> bytes:
    buffer = io.BytesIO()
    torch.save(ticket.mask, buffer)
    return buffer.getvalue()


def _set(path: list[str], value: object) -> Callable[[dict], None]:
    def change(manifest: dict) -> None:
        target = manifest
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


def _delete(key: str) -> Callable[[dict], None]:
    return lambda manifest: manifest.pop(key)


FIRST = "fc1.weight"

CASES: dict[str, tuple[Callable[[TicketFiles], Files], int, str]] = {
    "manifest not json": (lambda t: _replace(t.multipart(), "manifest", b"{not json"), 422, "invalid_manifest"),
    "manifest misses architecture": (_manifest(_delete("architecture")), 422, "invalid_manifest"),
    "manifest misses claimed": (_manifest(_delete("claimed")), 422, "invalid_manifest"),
    "unknown architecture": (_manifest(_set(["architecture"], "transformer_xl")), 422, "unknown_architecture"),
    "unknown task": (_manifest(_set(["task"], "imagenet-21k")), 422, "unknown_task"),
    "claimed accuracy above 1": (_manifest(_set(["claimed", "test_accuracy"], 1.5)), 422, "invalid_claim"),
    "claimed accuracy below 0": (_manifest(_set(["claimed", "test_accuracy"], -0.1)), 422, "invalid_claim"),
    "method longer than its column": (_manifest(_set(["method"], "x" * 60)), 422, "invalid_manifest"),
    "seed beyond 64 bits": (_manifest(_set(["init", "seed"], 2**70)), 422, "invalid_manifest"),
    "data seed beyond 64 bits": (_manifest(_set(["recipe", "data_seed"], 2**70)), 422, "invalid_manifest"),
    "NUL in the title": (_manifest(_set(["title"], "a\u0000b")), 422, "invalid_manifest"),
    "recipe over the step limit": (_manifest(_set(["recipe", "steps"], 10**6)), 422, "invalid_recipe"),
    "mask truncated": (_raw_mask(lambda b: b[: len(b) // 2]), 422, "invalid_safetensors"),
    "mask header longer than file": (_raw_mask(lambda b: struct.pack("<Q", len(b) * 10) + b[8:]), 422, "invalid_safetensors"),
    "mask is a pickle": (lambda t: _replace(t.multipart(), "mask", _pickled(t)), 422, "invalid_safetensors"),
    "mask is random bytes": (_raw_mask(lambda b: bytes(range(256)) * 4), 422, "invalid_safetensors"),
    "mask misses a parameter": (_mask(lambda m: m.pop(FIRST)), 422, "invalid_mask"),
    "mask has an extra parameter": (_mask(lambda m: m.update({"fc9.weight": torch.ones(2, 2, dtype=torch.bool)})), 422, "invalid_mask"),
    "mask masks a bias": (_mask(lambda m: m.update({"fc1.bias": torch.ones(32, dtype=torch.bool)})), 422, "invalid_mask"),
    "mask has a wrong shape": (_mask(lambda m: m.update({FIRST: m[FIRST][:, :-1].contiguous()})), 422, "invalid_mask"),
    "mask is not bool": (_mask(lambda m: m.update({FIRST: m[FIRST].to(torch.uint8)})), 422, "invalid_mask"),
    "init misses a tensor": (_init(lambda i: i.pop("fc1.bias")), 422, "invalid_init"),
    "init has a wrong shape": (_init(lambda i: i.update({FIRST: torch.zeros(3, 3)})), 422, "invalid_init"),
    "init holds NaN": (_init(lambda i: i[FIRST].view(-1)[0].fill_(float("nan"))), 422, "invalid_init"),
    "init holds Inf": (_init(lambda i: i[FIRST].view(-1)[5].fill_(float("inf"))), 422, "invalid_init"),
    "init disagrees with its seed": (_init(lambda i: i[FIRST].mul_(2)), 422, "init_mismatch"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_upload_is_refused_and_stores_nothing(
    case: str, client: TestClient, auth: dict[str, str], db_session: Session, blob_dir: Path
) -> None:
    build, status, code = CASES[case]
    response = client.post("/api/v1/tickets", files=build(make_ticket()), headers=auth)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == code and problem["status"] == status and problem["detail"]
    assert stored_counts(db_session, blob_dir) == (0, 0, 0, 0)


@pytest.mark.parametrize(
    ("header", "code"),
    [(None, "unauthorized"), ("Bearer nv_not-a-real-token", "invalid_token"), ("Basic dXNlcjpwYXNz", "invalid_token")],
)
def test_upload_without_a_valid_token_is_401(
    header: str | None, code: str, client: TestClient, db_session: Session, blob_dir: Path
) -> None:
    headers = {"Authorization": header} if header else {}
    response = client.post("/api/v1/tickets", files=make_ticket().multipart(), headers=headers)
    assert (response.status_code, response.json()["code"]) == (401, code)
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert stored_counts(db_session, blob_dir) == (0, 0, 0, 0)


def test_read_only_token_is_403(client: TestClient, db_session: Session, blob_dir: Path) -> None:
    from db.tokens import create_token

    _, secret = create_token(db_session, user_name="bob", token_name="ro", scopes=("read",))
    response = client.post("/api/v1/tickets", files=make_ticket().multipart(), headers={"Authorization": f"Bearer {secret}"})
    assert (response.status_code, response.json()["code"]) == (403, "insufficient_scope")
    assert stored_counts(db_session, blob_dir) == (0, 0, 0, 0)


def test_body_over_the_limit_is_413(client: TestClient, auth: dict[str, str], db_session: Session, blob_dir: Path) -> None:
    files = make_ticket().multipart()
    files["padding"] = ("pad.bin", b"\0" * 2_100_000, "application/octet-stream")
    response = client.post("/api/v1/tickets", files=files, headers=auth)
    assert (response.status_code, response.json()["code"]) == (413, "payload_too_large")
    assert stored_counts(db_session, blob_dir) == (0, 0, 0, 0)


def test_chunked_body_over_the_limit_is_413(client: TestClient, auth: dict[str, str], db_session: Session, blob_dir: Path) -> None:
    def chunks():
        # A well-formed multipart start whose file part never ends within the limit.
        yield b'--zz\r\nContent-Disposition: form-data; name="mask"; filename="m"\r\n\r\n'
        for _ in range(40):
            yield b"x" * 100_000

    response = client.post(
        "/api/v1/tickets", content=chunks(), headers={**auth, "Content-Type": "multipart/form-data; boundary=zz"}
    )
    assert (response.status_code, response.json()["code"]) == (413, "payload_too_large")
    assert stored_counts(db_session, blob_dir) == (0, 0, 0, 0)


def test_missing_mask_part_is_422(client: TestClient, auth: dict[str, str], db_session: Session, blob_dir: Path) -> None:
    files = make_ticket().multipart()
    del files["mask"]
    response = client.post("/api/v1/tickets", files=files, headers=auth)
    assert (response.status_code, response.json()["code"]) == (422, "validation_error")
    assert "mask" in response.json()["detail"]
    assert stored_counts(db_session, blob_dir) == (0, 0, 0, 0)

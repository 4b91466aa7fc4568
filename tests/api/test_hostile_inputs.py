"""Inputs that used to end in an unhandled 500: each is a 4xx problem with a code now,
and leaves nothing behind."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests.api.conftest import stored_counts
from tests.support.tickets import make_ticket


def _problem(answer: Any, status: int, code: str | None = None) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    if code is not None:
        assert answer.json()["code"] == code


@pytest.mark.parametrize("param", ["task", "arch", "tag"])
def test_a_nul_byte_in_a_filter_is_422(client: TestClient, param: str) -> None:
    _problem(client.get("/api/v1/tickets", params={param: "digits\x00"}), 422, "validation_error")


def test_a_nul_byte_in_an_architecture_task_is_4xx(client: TestClient) -> None:
    answer = client.get("/api/v1/architectures/lenet_32_16", params={"task": "dig\x00its"})
    assert 400 <= answer.status_code < 500 and answer.headers["content-type"] == "application/problem+json"


def _cursor(data: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "sort, data",
    [
        ("-created", {"s": "-created", "v": "2026-01-01T00:00:00+00:00", "id": 12345678901234}),
        ("-sparsity", {"s": "-sparsity", "v": 2**70, "id": "a" * 64}),
        ("-accuracy", {"s": "-accuracy", "v": True, "id": "a" * 64}),
        ("-accuracy", {"s": "-accuracy", "v": 10**400, "id": "a" * 64}),
        ("-created", {"s": "-created", "v": 5, "id": "a" * 64}),
        ("-created", [1, 2, 3]),
        ("-created", "just a string"),
    ],
)
def test_a_forged_cursor_is_400(client: TestClient, sort: str, data: Any) -> None:
    # The raw form too: json.dumps cannot write 10**400 as a float, but a client can.
    _problem(client.get("/api/v1/tickets", params={"sort": sort, "cursor": _cursor(data)}), 400, "invalid_cursor")


def test_a_cursor_with_an_enormous_number_is_400(client: TestClient) -> None:
    raw = b'{"s":"-sparsity","v":1' + b"0" * 400 + b'.5,"id":"' + b"a" * 64 + b'"}'
    cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    _problem(client.get("/api/v1/tickets", params={"sort": "-sparsity", "cursor": cursor}), 400, "invalid_cursor")


def test_deeply_nested_ticket_json_is_422(
    client: TestClient, auth: dict[str, str], db_session: Session, blob_dir: Path
) -> None:
    files = make_ticket().multipart()
    files["manifest"] = ("ticket.json", b"[" * 200_000 + b"]" * 200_000, "application/json")
    _problem(client.post("/api/v1/tickets", files=files, headers=auth), 422, "invalid_manifest")
    nested = json.dumps(make_ticket().manifest)[:-1] + ', "description": ' + "[" * 5000 + "]" * 5000 + "}"
    files["manifest"] = ("ticket.json", nested.encode(), "application/json")
    _problem(client.post("/api/v1/tickets", files=files, headers=auth), 422, "invalid_manifest")
    assert stored_counts(db_session, blob_dir) == (0, 0, 0, 0)


def test_deeply_nested_safetensors_header_is_422(
    client: TestClient, auth: dict[str, str], db_session: Session, blob_dir: Path
) -> None:
    header = b'{"__metadata__": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    files = make_ticket().multipart()
    files["mask"] = ("mask.safetensors", struct.pack("<Q", len(header)) + header, "application/octet-stream")
    _problem(client.post("/api/v1/tickets", files=files, headers=auth), 422, "invalid_safetensors")
    assert stored_counts(db_session, blob_dir) == (0, 0, 0, 0)

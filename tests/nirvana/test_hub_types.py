"""The client's typed answers (``nirvana.hub_types``) read a real server's responses
whole: every field the server sends is declared, so the types say what is there."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from nirvana import Client
from nirvana.hub_types import ArchitectureInfo, TaskInfo, TicketInfo, VerificationInfo
from nirvana.states import VerificationState
from tests.nirvana.conftest import LiveApi
from tests.support.tickets import make_ticket


def undeclared(model: BaseModel) -> list[str]:
    """Field paths the server sent that the type does not declare."""
    found = [f"{type(model).__name__}.{k}" for k in (model.model_extra or {})]
    for name in type(model).model_fields:
        value = getattr(model, name)
        for item in value if isinstance(value, list) else list(value.values()) if isinstance(value, dict) else [value]:
            if isinstance(item, BaseModel):
                found += undeclared(item)
    return found


@pytest.fixture
def client(live_api: LiveApi, tmp_path: Path) -> Iterator[Client]:
    with Client(live_api.url, token=live_api.token, home=tmp_path / "home") as client:
        yield client


def test_tickets_and_verifications_come_back_typed_and_whole(client: Client, tmp_path: Path) -> None:
    folder = tmp_path / "t"
    folder.mkdir()
    files = make_ticket(title="typed", tags=["imp"])
    (folder / "ticket.json").write_text(json.dumps(files.manifest))
    (folder / "mask.safetensors").write_bytes(files.mask_bytes())

    uploaded = client.push(folder)
    assert isinstance(uploaded, TicketInfo) and uploaded.created is True
    assert uploaded.init.scheme and uploaded.claimed.test_accuracy == pytest.approx(0.9)
    assert isinstance(uploaded.created_at, dt.datetime) and uploaded.tags == ["imp"]
    [queued] = uploaded.verifications
    assert isinstance(queued, VerificationInfo) and queued.state is VerificationState.QUEUED
    assert not queued.state.finished

    stored = client.ticket(uploaded.short_id)
    assert stored.layers and all(0 <= layer.density <= 1 for layer in stored.layers.values())
    assert stored.links is not None and stored.links.mask.endswith("/mask")
    assert undeclared(stored) == []

    [listed] = list(client.tickets(task="digits"))
    assert isinstance(listed, TicketInfo) and listed.id == stored.id and undeclared(listed) == []

    verification = client.verification(queued.id)
    assert verification.ticket_id == stored.id and undeclared(verification) == []
    cancelled = client.cancel(queued.id)
    assert cancelled.state is VerificationState.CANCELLED and cancelled.state.finished


def test_tasks_and_architectures_come_back_typed_and_whole(client: Client) -> None:
    tasks = {t.name: t for t in client.tasks()}
    assert all(isinstance(t, TaskInfo) for t in tasks.values())
    assert tasks["digits"].available and tasks["digits"].input_shape == [1, 8, 8]
    assert all(undeclared(t) == [] for t in tasks.values())
    arch = client.architecture("lenet_32_16", task="digits")
    assert isinstance(arch, ArchitectureInfo) and arch.prunable <= arch.total
    assert [p.name for p in arch.parameters if p.prunable][0] == "fc1.weight"
    assert undeclared(arch) == []


def test_a_newer_server_s_extra_fields_are_kept_not_refused() -> None:
    summary = {
        "id": "a" * 64, "short_id": "a" * 12, "architecture": "lenet_16", "task": "digits",
        "init": {"scheme": "kaiming_normal", "seed": 0, "rewind_step": 0}, "claimed": {"test_accuracy": 0.9},
        "density": 0.5, "sparsity": 0.5, "remaining": 10, "prunable": 20, "badge": "gold",
    }  # fmt: skip
    ticket = TicketInfo.model_validate(summary)
    assert ticket.model_extra == {"badge": "gold"}
    assert TicketInfo.model_validate(ticket.model_dump(mode="json")) == ticket

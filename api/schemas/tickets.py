"""Ticket payloads. Uploads arrive as multipart files (see ``nirvana.lottery.tickets.manifest.Manifest``);
these are what the API answers."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from api.schemas.verifications import VerificationRead
from db.models.tickets import Ticket


class InitRead(BaseModel):
    scheme: str
    seed: int | None
    rewind_step: int


class ClaimedRead(BaseModel):
    test_accuracy: float


class LayerRead(BaseModel):
    remaining: int
    total: int
    density: float


class TicketLinks(BaseModel):
    self: str
    mask: str
    init: str
    mask_packed: str
    init_kept: str


class DigestsRead(BaseModel):
    """``tensors_digest`` of the dense mask and init (the id is over these), and of the
    init with pruned weights zeroed (what ``init?format=kept`` rebuilds); ``init_kept``
    is None for tickets stored before compact forms existed."""

    mask: str
    init: str
    init_kept: str | None


def _ticket_fields(ticket: Ticket) -> dict[str, Any]:
    base = f"/api/v1/tickets/{ticket.id}"
    return {
        "id": ticket.id,
        "short_id": ticket.short_id,
        "architecture": ticket.architecture,
        "task": ticket.task,
        "init": {"scheme": ticket.init_scheme, "seed": ticket.seed, "rewind_step": ticket.rewind_step},
        "claimed": {"test_accuracy": ticket.claimed_accuracy},
        "method": ticket.method,
        "title": ticket.title,
        "tags": ticket.tags,
        "density": ticket.density,
        "sparsity": ticket.sparsity,
        "remaining": ticket.remaining,
        "prunable": ticket.prunable,
        "accuracy": ticket.accuracy,
        "verified": ticket.verified,
        "verified_accuracy": ticket.verified_accuracy,
        "winning": ticket.winning,
        "created_at": ticket.created_at,
        "links": {
            "self": base, "mask": f"{base}/mask", "init": f"{base}/init",
            "mask_packed": f"{base}/mask?format=packed", "init_kept": f"{base}/init?format=kept",
        },  # fmt: skip
        "digests": {"mask": ticket.mask_digest, "init": ticket.init_digest, "init_kept": ticket.init_kept_digest},
        "footprint": ticket.footprint,
    }


class TicketSummary(BaseModel):
    """A ticket as lists show it."""

    id: str
    short_id: str
    architecture: str
    task: str
    init: InitRead
    claimed: ClaimedRead
    method: str
    title: str
    tags: list[str]
    density: float
    sparsity: float
    remaining: int
    prunable: int
    accuracy: float
    verified: bool
    verified_accuracy: float | None
    winning: bool | None
    created_at: dt.datetime
    links: TicketLinks
    digests: DigestsRead
    #: parameters, MACs, bytes per form, the compact model (``nirvana.lottery.tickets.footprint``);
    #: None for tickets stored before footprints existed.
    footprint: dict[str, Any] | None

    @model_validator(mode="before")
    @classmethod
    def _from_orm(cls, value: Any) -> Any:
        return _ticket_fields(value) if isinstance(value, Ticket) else value


class TicketRead(TicketSummary):
    """Everything about one ticket, with its verifications."""

    recipe: dict[str, Any]
    description: str
    license: str
    parent: str | None
    submitter: str
    layers: dict[str, LayerRead]
    manifest: dict[str, Any]
    verifications: list[VerificationRead]

    @model_validator(mode="before")
    @classmethod
    def _from_orm(cls, value: Any) -> Any:
        if not isinstance(value, Ticket):
            return value
        return {
            **_ticket_fields(value),
            "recipe": value.recipe,
            "description": value.description,
            "license": value.license,
            "parent": value.parent_id,
            "submitter": value.submitter.name,
            "layers": value.layers,
            "manifest": value.manifest,
            "verifications": value.verifications,
        }


class TicketPage(BaseModel):
    model_config = ConfigDict(json_schema_extra={"description": "One page; pass next_cursor back as cursor."})

    items: list[TicketSummary]
    next_cursor: str | None

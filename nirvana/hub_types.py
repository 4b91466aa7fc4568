"""What the client returns: typed objects for the server's JSON, as huggingface_hub
returns ``ModelInfo`` rather than dicts.

They mirror the server's response schemas (``api/schemas``), which the client may not
import. Unknown fields are kept (``extra="allow"``) and fields a server may add later
have defaults, so an older client reads a newer server's answers. Attribute access is
the interface (``ticket.short_id``, ``verification.state``); ``model_dump(mode="json")``
gives the JSON back. ``tests/nirvana/test_hub_types.py`` parses a real server's answers.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from nirvana.states import VerificationState


class _Answer(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class InitInfo(_Answer):
    scheme: str
    seed: int | None = None
    rewind_step: int = 0


class ClaimInfo(_Answer):
    test_accuracy: float


class LayerInfo(_Answer):
    remaining: int
    total: int
    density: float


class TicketLinks(_Answer):
    self: str
    mask: str
    init: str
    mask_packed: str | None = None
    init_kept: str | None = None


class DigestsInfo(_Answer):
    """``tensors_digest`` of the dense mask and init (the id is over these), and of the
    init with pruned weights zeroed (None for tickets stored before compact forms)."""

    mask: str
    init: str
    init_kept: str | None = None


class VerificationInfo(_Answer):
    """One verification (a retraining of a ticket on a task): its ``state``,
    ``progress`` in [0, 1], and, once finished, ``result`` or ``error``."""

    id: str
    ticket_id: str
    task: str
    state: VerificationState
    progress: float = 0.0
    attempts: int = 0
    max_attempts: int | None = None
    cancel_requested: bool = False
    recipe: dict[str, Any] = Field(default_factory=dict)
    claimed_accuracy: float | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    created_at: dt.datetime | None = None
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None


class TicketInfo(_Answer):
    """A ticket as the server describes it. Lists send the summary fields; one ticket
    (:meth:`nirvana.Client.ticket`) adds ``recipe``, ``description``, ``license``,
    ``layers``, ``manifest`` and ``verifications``. ``created`` is set by
    :meth:`nirvana.Client.upload`: True when the upload stored a new ticket."""

    id: str
    short_id: str
    architecture: str
    task: str
    init: InitInfo
    claimed: ClaimInfo
    method: str = ""
    title: str = ""
    tags: list[str] = Field(default_factory=list)
    density: float
    sparsity: float
    remaining: int
    prunable: int
    accuracy: float | None = None
    verified: bool = False
    verified_accuracy: float | None = None
    winning: bool | None = None
    #: The latest verdict on its own task (``winning``, ``not_winning``,
    #: ``not_reproduced``); None while pending.
    verdict: str | None = None
    dense_accuracy: float | None = None
    created_at: dt.datetime | None = None
    links: TicketLinks | None = None
    digests: DigestsInfo | None = None
    #: parameters, MACs, bytes per form, the compact model; None for older tickets.
    footprint: dict[str, Any] | None = None
    recipe: dict[str, Any] | None = None
    description: str = ""
    license: str | None = None
    parent: str | None = None
    submitter: str | None = None
    layers: dict[str, LayerInfo] = Field(default_factory=dict)
    manifest: dict[str, Any] = Field(default_factory=dict)
    verifications: list[VerificationInfo] = Field(default_factory=list)
    created: bool | None = None


class TaskInfo(_Answer):
    """A task the server knows; ``available`` says whether its data is there."""

    name: str
    description: str = ""
    input_shape: list[int]
    num_classes: int
    train_size: int
    test_size: int
    metric: str = "accuracy"
    available: bool = False
    ticket_count: int = 0
    default_recipe: dict[str, Any] = Field(default_factory=dict)


class ParameterInfo(_Answer):
    name: str
    shape: list[int]
    prunable: bool
    buffer: bool = False


class ArchitectureInfo(_Answer):
    """An architecture's parameters on one task."""

    name: str
    task: str
    parameters: list[ParameterInfo]
    total: int
    prunable: int

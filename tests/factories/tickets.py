"""Insert a small, real ticket: a LeNet mask and init on a task, stored as safetensors
blobs in a ``LocalBlobStorage``, indexed in ``blobs``, owned by a ``User``.

The tensors are real (``nirvana.lottery.models.init.generate_init`` and a seeded random mask of the
prunable weights), so a worker can retrain the ticket; the ticket id is a SHA-256 of
the same fields the real id covers, though not necessarily computed by the same
function (tests here never re-derive it).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from typing import Any

import torch
from safetensors.torch import save as save_safetensors
from sqlalchemy.orm import Session

from db.blobs import LocalBlobStorage
from db.models.blobs import Blob
from db.models.tickets import Ticket
from db.models.users import User
from db.models.verifications import Verification
from db.queue import enqueue_verification
from nirvana.lottery.models.architectures import describe
from nirvana.lottery.tickets.digests import tensors_digest
from nirvana.lottery.models.init import generate_init
from nirvana.lottery.data.tasks import get_task

#: ~100 steps of Adam on ``digits``: a couple of seconds on a CPU.
TINY_RECIPE: dict[str, Any] = {"optimizer": "adam", "lr": 0.01, "batch_size": 64, "steps": 100}

SAFETENSORS = "application/vnd.safetensors"


def make_user(session: Session, name: str | None = None) -> User:
    user = User(name=name or f"user-{uuid.uuid4().hex[:8]}")
    session.add(user)
    session.flush()
    return user


def _store_blob(session: Session, storage: LocalBlobStorage, data: bytes) -> str:
    digest = storage.put(data)
    if session.get(Blob, digest) is None:
        session.add(Blob(sha256=digest, size=len(data), media_type=SAFETENSORS))
        session.flush()
    return digest


def random_mask(init: Mapping[str, torch.Tensor], prunable: list[str], density: float, seed: int) -> dict[str, torch.Tensor]:
    """A BOOL mask keeping ``density`` of each prunable tensor, chosen by ``seed``."""
    g = torch.Generator().manual_seed(seed)
    return {name: torch.rand(init[name].shape, generator=g) < density for name in prunable}


def store_ticket(
    session: Session,
    storage: LocalBlobStorage,
    *,
    architecture: str = "lenet_32",
    task: str = "digits",
    seed: int = 0,
    density: float = 0.3,
    claimed_accuracy: float = 0.9,
    recipe: Mapping[str, Any] | None = None,
    submitter: User | None = None,
) -> Ticket:
    """Store the mask and init blobs and insert the ticket row (flushed, not committed)."""
    spec = get_task(task)
    info = describe(architecture, spec.input_shape, spec.num_classes)
    init = generate_init(architecture, spec, "kaiming_normal", seed)
    mask = random_mask(init, info.prunable_names(), density, seed + 1)
    mask_sha = _store_blob(session, storage, save_safetensors(mask))
    init_sha = _store_blob(session, storage, save_safetensors(init))
    init_digest, mask_digest = tensors_digest(init), tensors_digest(mask)
    remaining = int(sum(int(m.sum()) for m in mask.values()))
    canonical = json.dumps(
        {"architecture": architecture, "init_scheme": "kaiming_normal", "seed": seed, "rewind_step": 0,
         "init_digest": init_digest, "mask_digest": mask_digest},
        sort_keys=True, separators=(",", ":"),
    )
    recipe = dict(recipe if recipe is not None else TINY_RECIPE)
    user = submitter or make_user(session)
    ticket = Ticket(
        id=hashlib.sha256(canonical.encode()).hexdigest(),
        architecture=architecture,
        task=task,
        init_scheme="kaiming_normal",
        seed=seed,
        rewind_step=0,
        init_digest=init_digest,
        mask_digest=mask_digest,
        mask_sha256=mask_sha,
        init_sha256=init_sha,
        manifest={"architecture": architecture, "task": task, "recipe": recipe},
        recipe=recipe,
        claimed_accuracy=claimed_accuracy,
        method="random",
        title=f"test ticket {architecture} on {task}",
        license="CC-BY-4.0",
        density=remaining / info.prunable,
        remaining=remaining,
        prunable=info.prunable,
        layers={n: {"remaining": int(m.sum()), "size": m.numel()} for n, m in mask.items()},
        accuracy=claimed_accuracy,
        submitter_id=user.id,
    )
    session.add(ticket)
    session.flush()
    return ticket


def store_queued(
    session: Session,
    storage: LocalBlobStorage,
    *,
    max_attempts: int = 3,
    task: str | None = None,
    recipe: Mapping[str, Any] | None = None,
    **ticket_kwargs: Any,
) -> tuple[Ticket, Verification]:
    """A ticket and a queued verification of it (on its own task unless ``task``)."""
    ticket = store_ticket(session, storage, recipe=recipe, **ticket_kwargs)
    verification = enqueue_verification(
        session,
        ticket_id=ticket.id,
        task=task or ticket.task,
        recipe=ticket.recipe if recipe is None else recipe,
        claimed_accuracy=ticket.claimed_accuracy,
        max_attempts=max_attempts,
    )
    return ticket, verification

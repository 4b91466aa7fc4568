"""The child process's side of a verification: read the ticket's blobs, retrain it with
controls (``nirvana.lottery.verification.protocol``), return the result. No SQL: the parent passes a ``JobSpec``
of plain values it read from the database, and records what this returns."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from db.blobs import BlobConfig, make_storage


class ProgressSink(Protocol):
    """Where progress fractions go (a ``multiprocessing`` queue in the worker)."""

    def put(self, obj: Any, block: bool = ..., timeout: float | None = ...) -> None: ...


@dataclass(frozen=True)
class JobSpec:
    """Everything a child needs to run one verification, as picklable plain values."""

    verification_id: str
    ticket_id: str
    architecture: str
    init_scheme: str
    task: str
    recipe: dict[str, Any]
    claimed_accuracy: float
    mask_sha256: str
    init_sha256: str
    blob: BlobConfig
    data_dir: Path | None = None
    #: ``None``: CUDA when available, else the CPU (decided here, in the child).
    device: str | None = None
    #: torch's intra-op CPU threads; ``None``: torch's default (one per core).
    threads: int | None = None


class _Throttled:
    """Forward progress at most every ``interval`` seconds (and always the end), so a
    fast training loop does not flood the pipe with numbers the parent mostly drops."""

    def __init__(self, sink: ProgressSink, interval: float = 0.25) -> None:
        self.sink, self.interval, self.last = sink, interval, 0.0

    def __call__(self, fraction: float) -> None:
        now = time.monotonic()
        if fraction >= 1.0 or now - self.last >= self.interval:
            self.last = now
            self.sink.put(float(fraction))


def run_verification(job: JobSpec, progress_queue: ProgressSink) -> dict[str, Any]:
    """Verify the ticket described by ``job`` and return ``VerificationResult.to_dict()``.

    Raises a ``nirvana.lottery.errors.LotteryError`` for anything the ticket or its job is to
    blame for (task data unavailable, a mask that does not fit the task's
    architecture, an invalid recipe): retrying cannot help. Anything else (a missing
    blob, CUDA out of memory) may be transient and the worker retries it.
    """
    # The blobs first: a missing one fails in milliseconds, before torch loads.
    storage = make_storage(job.blob)
    with storage.open(job.mask_sha256) as handle:
        mask_bytes = handle.read()
    with storage.open(job.init_sha256) as handle:
        init_bytes = handle.read()
    # Imported here, not at the top, so that the parent (which imports this module for
    # JobSpec) never loads torch, let alone initialises CUDA.
    import torch

    from nirvana.lottery.models.architectures import describe
    from nirvana.lottery.errors import InvalidRecipeError
    from nirvana.lottery.pruning.masks import validate_init, validate_mask
    from nirvana.lottery.data.tasks import get_task, load_task
    from nirvana.lottery.tickets.files import load_tensors
    from nirvana.lottery.training.recipes import Recipe
    from nirvana.lottery.verification.protocol import pick_device, verify_ticket

    if job.threads is not None:
        # Several workers (or jobs) on one CPU oversubscribe it badly with torch's default
        # of one thread per core each; an operator caps it here.
        torch.set_num_threads(job.threads)
    mask = load_tensors(mask_bytes)
    init = load_tensors(init_bytes)
    try:
        recipe = Recipe.model_validate(job.recipe)
    except ValidationError as exc:
        raise InvalidRecipeError(f"invalid recipe: {exc.errors(include_url=False)}") from None
    spec = get_task(job.task)
    # A transfer evaluation runs the ticket on another task: its tensors must still
    # fit the architecture built for that task's input.
    info = describe(job.architecture, spec.input_shape, spec.num_classes)
    validate_mask(mask, info)
    validate_init(init, info)
    device = job.device or str(pick_device())
    data = load_task(job.task, job.data_dir, device=device)
    result = verify_ticket(
        architecture=job.architecture,
        task_data=data,
        task_spec=spec,
        init=init,
        mask=mask,
        recipe=recipe,
        claimed_accuracy=job.claimed_accuracy,
        scheme=job.init_scheme,
        device=device,
        on_progress=_Throttled(progress_queue),
    )
    return result.to_dict()

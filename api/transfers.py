"""Queueing a verification of a stored ticket on another task: a transfer evaluation.

The database then records which tasks a ticket is good for (its verifications, one per
task and recipe). The ticket's own accuracy and badges stay those of its own task.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session

from db.blobs import BlobStorage
from db.models.tickets import Ticket
from db.models.verifications import Verification
from db.queue import enqueue_verification
from nirvana.lottery.models.architectures import describe
from nirvana.lottery.errors import IncompatibleTaskError, LotteryError, InvalidMaskError, InvalidRecipeError, TaskUnavailableError
from nirvana.lottery.tickets.files import load_tensors
from nirvana.lottery.pruning.masks import validate_mask
from nirvana.lottery.training.recipes import Recipe
from nirvana.lottery.data.tasks import get_task, is_available


class SameTaskError(LotteryError):
    code = "same_task"
    status = 409


def queue_transfer(
    session: Session,
    storage: BlobStorage,
    ticket: Ticket,
    *,
    task: str,
    recipe: Recipe | None,
    claimed_accuracy: float | None,
    max_steps: int,
    data_dir: Path | None,
) -> Verification:
    """Queue a verification of ``ticket`` on ``task`` under ``recipe`` (the task's
    default when None). ``claimed_accuracy`` defaults to the ticket's own claim.

    Raises ``SameTaskError`` (``task`` is the ticket's own), ``UnknownTaskError``, ``TaskUnavailableError`` (no data on this server),
    ``IncompatibleTaskError`` (the ticket's tensors do not fit the architecture built
    for that task) and ``InvalidRecipeError`` (over the compute bound); nothing is
    queued then."""
    if task == ticket.task:
        # The ticket's own task is verified at upload, under its own recipe and claim;
        # a second run there would overwrite that verdict with someone else's terms.
        raise SameTaskError(f"ticket {ticket.short_id} was found on {task}; a transfer evaluation needs another task")
    spec = get_task(task)
    if not is_available(task, data_dir):
        raise TaskUnavailableError(f"the data of task {task!r} is not on this server; its operator runs `nirvana data fetch {task}`")
    info = describe(ticket.architecture, spec.input_shape, spec.num_classes)
    with storage.open(ticket.mask_sha256) as handle:
        mask = load_tensors(handle.read())
    try:
        validate_mask(mask, info)
    except InvalidMaskError as exc:
        raise IncompatibleTaskError(
            f"ticket {ticket.short_id} ({ticket.architecture} on {ticket.task}) does not fit {task}: {exc.detail}"
        ) from None
    resolved = recipe or spec.default_recipe
    if resolved.steps > max_steps:
        raise InvalidRecipeError(f"recipe.steps={resolved.steps} exceeds this server's limit of {max_steps} steps")
    return enqueue_verification(
        session,
        ticket_id=ticket.id,
        task=task,
        recipe=resolved.model_dump(mode="json"),
        claimed_accuracy=ticket.claimed_accuracy if claimed_accuracy is None else claimed_accuracy,
    )

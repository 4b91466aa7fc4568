"""Queueing a verification of a stored ticket: on another task (a transfer
evaluation), or once more on its own task after the last one was cancelled or failed.

The database then records which tasks a ticket is good for (its verifications, one per
task and recipe). The ticket's own accuracy and badges stay those of its own task.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from sqlalchemy.orm import Session

from api.errors import ProblemError
from api.owners import ensure_owner
from db.blobs import BlobStorage
from db.models.tickets import Ticket
from db.models.users import ApiToken
from db.models.verifications import Verification
from db.queue import enqueue_verification
from db.repositories.verifications import lock_own_task
from nirvana.lottery.models.architectures import describe
from nirvana.lottery.errors import IncompatibleTaskError, InvalidMaskError, TaskUnavailableError
from nirvana.lottery.tickets.files import load_tensors
from nirvana.lottery.pruning.masks import validate_mask
from nirvana.lottery.training.recipes import Recipe, check_compute
from nirvana.lottery.data.tasks import get_task, is_available


class SameTaskError(ProblemError):
    """A transfer evaluation on the ticket's own task."""

    def __init__(self, detail: str) -> None:
        super().__init__(409, "same_task", detail)


def queue_transfer(
    session: Session,
    storage: BlobStorage,
    ticket: Ticket,
    *,
    task: str,
    recipe: Recipe | None,
    claimed_accuracy: float | None,
    max_steps: int,
    max_examples: int,
    data_dir: Path | None,
    requested_by_id: uuid.UUID | None = None,
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
    resolved = recipe or spec.default_recipe
    check_compute(resolved, max_steps=max_steps, max_examples=max_examples)
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
    return enqueue_verification(
        session,
        ticket_id=ticket.id,
        task=task,
        recipe=resolved.model_dump(mode="json"),
        claimed_accuracy=ticket.claimed_accuracy if claimed_accuracy is None else claimed_accuracy,
        requested_by_id=requested_by_id,
    )


def queue_again(session: Session, ticket: Ticket, token: ApiToken, *, with_terms: bool) -> Verification:
    """Queue a new verification of ``ticket`` on its own task, under its own recipe and
    claim, when none there is queued, running or succeeded (the last one was cancelled
    or failed). The earlier ones stay in the history. ``with_terms``: the request named
    a recipe or claim of its own, which the ticket's own task does not take.

    Raises, nothing queued: ``SameTaskError`` (409) when one is pending or done, then
    ``ProblemError`` 403 ``insufficient_scope`` (no ``write``) or ``not_owner`` (neither
    the uploader nor an admin), then 422 ``own_terms`` for ``with_terms``."""
    blocker = lock_own_task(session, ticket)
    if blocker is not None:
        raise SameTaskError(
            f"ticket {ticket.short_id} already has a {blocker.state} verification on its own task "
            f"({blocker.id}); only a cancelled or failed one can be queued again"
        )
    if not token.allows("write"):
        raise ProblemError(403, "insufficient_scope", "the token lacks the 'write' scope")
    ensure_owner(token, uploader_id=ticket.submitter_id, action="queue its verification again")
    if with_terms:
        # Its own task's verdict speaks for the uploader's claim, under the uploaded recipe.
        raise ProblemError(
            422, "own_terms", f"on its own task ({ticket.task}) a ticket is verified under its own recipe and claim"
        )
    return enqueue_verification(
        session,
        ticket_id=ticket.id,
        task=ticket.task,
        recipe=ticket.recipe,
        claimed_accuracy=ticket.claimed_accuracy,
        requested_by_id=token.user_id,
    )

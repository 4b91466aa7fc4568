"""Submitting a ticket: validate everything, store blobs, insert rows, queue a
verification — all or nothing.

Order matters for "leaves nothing behind": every check runs before the first byte is
written; blobs are made durable before the rows that name them; if the rows cannot be
written, the blobs this call created are removed again.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import anyio.to_thread

from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session

from db.blobs import BlobStorage, sha256_hex
from db.models.tickets import Ticket
from db.models.users import ApiToken
from db.queue import enqueue_verification
from db.repositories.blobs import lock_blob, record_blob, referenced_digests
from db.repositories.tickets import find_ticket
from nirvana.lottery.errors import InvalidManifestError
from nirvana.lottery.tickets.footprint import ticket_footprint
from nirvana.lottery.tickets.manifest import PreparedTicket, prepare_ticket

SAFETENSORS = "application/vnd.safetensors"


@dataclass(frozen=True)
class Submission:
    ticket: Ticket
    created: bool


async def validate_upload(
    limiter: anyio.CapacityLimiter,
    *,
    manifest: bytes,
    mask: bytes,
    init: bytes | None,
    max_steps: int,
    max_examples: int,
) -> PreparedTicket:
    """``prepare_ticket`` on a thread of ``limiter``'s own: at most its token count of
    uploads validate at once, and one waiting for its turn holds no thread, so the
    requests of other clients never queue behind validation. Raises what
    ``prepare_ticket`` raises."""
    work = partial(prepare_ticket, manifest, mask, init, max_steps=max_steps, max_examples=max_examples)
    return await anyio.to_thread.run_sync(work, limiter=limiter)


def submit_ticket(session: Session, storage: BlobStorage, *, token: ApiToken, prepared: PreparedTicket) -> Submission:
    """Store a validated ticket (``validate_upload``) and queue its verification, or
    return the identical one already stored."""
    existing = find_ticket(session, prepared.id, with_details=True)
    if existing is not None:
        return Submission(existing, created=False)

    created_blobs: list[str] = []
    blobs = _blobs_of(prepared)
    try:
        for sha in sorted(blobs):  # one order for every upload: no deadlock
            lock_blob(session, sha)
        for sha, data in blobs.items():
            _store_blob(storage, sha, data, created_blobs)
        for sha, data in blobs.items():
            record_blob(session, sha256=sha, size=len(data), media_type=SAFETENSORS)
        session.add(_ticket_row(prepared, token=token))
        session.flush()
        enqueue_verification(
            session,
            ticket_id=prepared.id,
            task=prepared.manifest.task,
            recipe=prepared.recipe.model_dump(mode="json"),
            claimed_accuracy=prepared.manifest.claimed.test_accuracy,
            requested_by_id=token.user_id,
        )
        session.flush()
    except IntegrityError:
        # A concurrent upload of the same ticket won the insert: answer with its row.
        _undo(session, storage, created_blobs)
        winner = find_ticket(session, prepared.id, with_details=True)
        if winner is None:
            raise
        return Submission(winner, created=False)
    except DataError as exc:
        # prepare_ticket checks every bound the columns have; this is the safety net.
        _undo(session, storage, created_blobs)
        raise InvalidManifestError(f"ticket.json holds a value the database cannot store: {exc.orig}") from None
    except BaseException:
        _undo(session, storage, created_blobs)
        raise
    ticket = find_ticket(session, prepared.id, with_details=True)
    assert ticket is not None
    return Submission(ticket, created=True)


def _blobs_of(prepared: PreparedTicket) -> dict[str, bytes]:
    """sha256 -> bytes of the four files a ticket stores: mask and init, dense and compact."""
    files = (prepared.mask_bytes, prepared.init_bytes, prepared.mask_packed_bytes, prepared.init_kept_bytes)
    return {sha256_hex(data): data for data in files}


def _store_blob(storage: BlobStorage, sha: str, data: bytes, created: list[str]) -> None:
    """Make ``data`` durable, noting in ``created`` whether this call wrote it. The
    caller holds the digest's lock until its transaction ends, so a failing upload's
    cleanup cannot remove a file this one is about to reference."""
    existed = storage.exists(sha)
    storage.put(data)  # also refreshes a reused file's age, for nirvana gc's grace period
    if not existed:
        created.append(sha)


def _undo(session: Session, storage: BlobStorage, created: list[str]) -> None:
    session.rollback()
    _remove_unreferenced(session, storage, created)


def _remove_unreferenced(session: Session, storage: BlobStorage, digests: list[str]) -> None:
    """Remove the files this upload created unless a committed ticket names them now.
    Runs after the rollback, under the digests' locks taken again."""
    for sha in sorted(digests):
        lock_blob(session, sha)
    keep = referenced_digests(session, digests)
    for sha in digests:
        if sha not in keep:
            storage.delete(sha)


def _ticket_row(prepared: PreparedTicket, *, token: ApiToken) -> Ticket:
    manifest = prepared.manifest
    report = prepared.sparsity
    footprint = ticket_footprint(prepared)
    return Ticket(
        id=prepared.id,
        architecture=manifest.architecture,
        task=manifest.task,
        init_scheme=manifest.init.scheme,
        seed=manifest.init.seed,
        rewind_step=manifest.init.rewind_step,
        init_digest=prepared.init_digest,
        mask_digest=prepared.mask_digest,
        mask_sha256=sha256_hex(prepared.mask_bytes),
        init_sha256=sha256_hex(prepared.init_bytes),
        mask_packed_sha256=sha256_hex(prepared.mask_packed_bytes),
        init_kept_sha256=sha256_hex(prepared.init_kept_bytes),
        init_kept_digest=prepared.init_kept_digest,
        footprint=footprint,
        parameters_kept=footprint["parameters_kept"],
        manifest=manifest.model_dump(mode="json"),
        recipe=prepared.recipe.model_dump(mode="json"),
        claimed_accuracy=manifest.claimed.test_accuracy,
        method=manifest.method,
        title=manifest.title,
        description=manifest.description,
        tags=list(manifest.tags),
        license=manifest.license,
        parent_id=manifest.parent,
        density=report.density,
        remaining=report.remaining,
        prunable=report.prunable,
        layers=report.to_dict()["layers"],
        accuracy=manifest.claimed.test_accuracy,
        submitter_id=token.user_id,
    )

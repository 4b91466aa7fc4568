"""Which stored file serves a download form: the dense files, or the compact ones
(``mask?format=packed``, ``init?format=kept``; see ``nirvana.lottery.tickets.compact``).

Compact files are stored content-addressed at upload, beside the dense ones. A ticket
stored before they existed gets them on its first compact download: derived from its
dense files, stored, indexed and named in its row (once; later downloads read the row).
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy.orm import Session

from db.blobs import BlobStorage, sha256_hex
from db.models.tickets import Ticket
from api.submissions import SAFETENSORS
from db.repositories.blobs import lock_blob, record_blob
from nirvana.lottery.tickets.compact import encode_init, encode_mask, masked_init
from nirvana.lottery.tickets.digests import tensors_digest
from nirvana.lottery.tickets.files import load_tensors
from nirvana.lottery.tickets.manifest import file_metadata

Kind = Literal["mask", "init"]
Form = Literal["dense", "packed", "kept"]

#: The one compact form of each kind.
COMPACT: dict[str, str] = {"mask": "packed", "init": "kept"}


def form_sha(session: Session, storage: BlobStorage, ticket: Ticket, kind: Kind, form: Form) -> tuple[str, str]:
    """(sha256 of the file, its download name) for ``kind`` in ``form``.

    Raises ``ValueError`` when ``form`` is not ``dense`` or the kind's compact form."""
    if form == "dense":
        return (ticket.mask_sha256 if kind == "mask" else ticket.init_sha256), f"{kind}.safetensors"
    if COMPACT[kind] != form:
        raise ValueError(f"the {kind} comes as dense or {COMPACT[kind]}, not {form}")
    if ticket.mask_packed_sha256 is None or ticket.init_kept_sha256 is None:
        _derive(session, storage, ticket)
    sha = ticket.mask_packed_sha256 if kind == "mask" else ticket.init_kept_sha256
    assert sha is not None
    return sha, f"{kind}.{form}.safetensors"


def _derive(session: Session, storage: BlobStorage, ticket: Ticket) -> None:
    """Store the compact files of a ticket that has only dense ones and name them in
    its row (flushed; the request's unit of work commits before the response)."""
    with storage.open(ticket.mask_sha256) as handle:
        mask = load_tensors(handle.read())
    with storage.open(ticket.init_sha256) as handle:
        init = load_tensors(handle.read())
    meta = file_metadata(ticket.architecture)
    files = {"mask": encode_mask(mask, meta), "init": encode_init(init, mask, meta)}
    shas = {kind: sha256_hex(data) for kind, data in files.items()}
    for sha in sorted(set(shas.values())):
        lock_blob(session, sha)
    for kind, data in files.items():
        storage.put(data)
        record_blob(session, sha256=shas[kind], size=len(data), media_type=SAFETENSORS)
    ticket.mask_packed_sha256, ticket.init_kept_sha256 = shas["mask"], shas["init"]
    ticket.init_kept_digest = tensors_digest(masked_init(init, mask))
    session.flush()

"""The client's compact downloads: fetch the packed mask and the kept init (or
regenerate a seed's init), rebuild the dense tensors, and check them against digests
the ticket id proves.

The ticket JSON carries ``digests`` (of the dense mask and init); the id is the
SHA-256 over them (``nirvana.lottery.tickets.manifest.ticket_id``), so a rebuilt tensor
dictionary whose digest matches is the ticket's, whatever server sent it. What is
rebuilt is written to the cache under its own sha256 and remembered in the ticket's
ref (``mask_decoded``, ``init_decoded``), so the next load decodes nothing.

The init, in order of preference:

1. ``seed`` given and ``rewind_step == 0``: regenerated here, used when its digest is
   the ticket's (torch versions can differ across machines; then on to 2.);
2. the kept values, pruned weights zero: the dense init exactly when its digest is the
   ticket's; else, when ``exact`` is false, accepted against ``digests.init_kept`` (a
   masked model computes and trains the same);
3. the dense file.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nirvana.cache import BlobCache
from nirvana.errors import DigestMismatchError

if TYPE_CHECKING:
    import torch

#: fetch(kind, link) -> the verified cached file (``kind`` names the ref entry).
Fetch = Callable[[str, str], Path]


def supports_compact(ticket: Mapping[str, Any]) -> bool:
    """Whether the server sent what compact downloads need (older servers did not)."""
    links, digests = ticket.get("links") or {}, ticket.get("digests") or {}
    return bool(links.get("mask_packed") and links.get("init_kept") and digests.get("mask") and digests.get("init"))


def check_digests_prove_id(ticket: Mapping[str, Any]) -> None:
    """Raise ``DigestMismatchError`` unless the ticket's id is the hash over its digests."""
    from nirvana.lottery.tickets.manifest import ticket_id

    init = ticket["init"]
    expected = ticket_id(
        architecture=ticket["architecture"], init_scheme=init["scheme"], seed=init["seed"],
        rewind_step=init["rewind_step"], init_digest=ticket["digests"]["init"], mask_digest=ticket["digests"]["mask"],
    )  # fmt: skip
    if expected != ticket["id"]:
        raise DigestMismatchError(f"the digests the server sent for {ticket['id'][:12]} do not hash to its id")


def fetch_compact(cache: BlobCache, ticket: Mapping[str, Any], fetch: Fetch, *, exact: bool) -> tuple[Path, Path]:
    """Paths of the dense mask and init files rebuilt from the compact forms.

    Args:
        fetch: downloads (or reads from the cache) a link; see ``Fetch``.
        exact: the init must be the ticket's dense init (``download``); else the
            masked init, pruned weights zero, will do (``load``).

    Raises:
        DigestMismatchError: what was rebuilt is not the ticket's.
    """
    from nirvana.lottery.tickets.compact import decode_init, decode_mask
    from nirvana.lottery.tickets.digests import tensors_digest
    from nirvana.lottery.tickets.files import load_tensors

    check_digests_prove_id(ticket)
    digests = ticket["digests"]
    known = cache.read_ref(ticket["id"]).get("blobs", {})
    mask_path = _known(cache, known.get("mask_decoded"))
    if mask_path is None:
        mask = decode_mask(fetch("mask_packed", ticket["links"]["mask_packed"]).read_bytes())
        if tensors_digest(mask) != digests["mask"]:
            raise DigestMismatchError(f"the packed mask of {ticket['id'][:12]} does not decode to its digest")
        mask_path = _store(cache, ticket, "mask_decoded", mask)
    else:
        mask = load_tensors(mask_path.read_bytes())
    init_path = _known(cache, known.get("init_decoded")) or (None if exact else _known(cache, known.get("init_masked")))
    if init_path is not None:
        return mask_path, init_path
    regenerated = _regenerate(ticket)
    if regenerated is not None and tensors_digest(regenerated) == digests["init"]:
        return mask_path, _store(cache, ticket, "init_decoded", regenerated)
    init = decode_init(fetch("init_kept", ticket["links"]["init_kept"]).read_bytes(), mask)
    digest = tensors_digest(init)
    if digest == digests["init"] or (not exact and digest == digests.get("init_kept")):
        return mask_path, _store(cache, ticket, "init_decoded" if digest == digests["init"] else "init_masked", init)
    if not exact:
        raise DigestMismatchError(f"the kept init of {ticket['id'][:12]} does not decode to its digests")
    return mask_path, fetch("init", ticket["links"]["init"])


def _regenerate(ticket: Mapping[str, Any]) -> dict[str, torch.Tensor] | None:
    init = ticket["init"]
    if init.get("seed") is None or init.get("rewind_step"):
        return None
    from nirvana.lottery.data.tasks import get_task
    from nirvana.lottery.errors import LotteryError
    from nirvana.lottery.models.init import generate_init

    try:
        return generate_init(ticket["architecture"], get_task(ticket["task"]), init["scheme"], init["seed"])
    except LotteryError:  # a scheme or task this library does not know: download instead
        return None


def _known(cache: BlobCache, digest: str | None) -> Path | None:
    return cache.blob(digest) if digest is not None and cache.has(digest) else None


def _store(cache: BlobCache, ticket: Mapping[str, Any], kind: str, tensors: Mapping[str, torch.Tensor]) -> Path:
    """Write ``tensors`` into the cache under their file's sha256 (atomically; never
    rewriting a file already there) and remember it in the ticket's ref."""
    from nirvana.lottery.tickets.files import dump_tensors
    from nirvana.lottery.tickets.manifest import file_metadata

    data = dump_tensors(tensors, file_metadata(ticket["architecture"]))
    digest = hashlib.sha256(data).hexdigest()
    path = cache.blob(digest)
    if not path.is_file():
        cache.blobs.mkdir(parents=True, exist_ok=True)
        tmp = cache.blobs / f".{digest}.{os.getpid()}.tmp"
        tmp.write_bytes(data)
        tmp.replace(path)
    cache.write_ref(ticket["id"], **{kind: digest})  # type: ignore[arg-type]  # kind is a blob name
    return path

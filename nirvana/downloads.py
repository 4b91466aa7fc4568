"""Bringing a ticket's files to this machine: the part of :class:`nirvana.Client` that
downloads (``download``, ``load``).

Every file goes through the client's cache (:mod:`nirvana.cache`, verified by sha256
when read); by default the compact forms are fetched and the dense tensors rebuilt,
digest-checked (:mod:`nirvana.decoding`). ``Client`` inherits these methods; they use
only what the ``_Fetcher`` protocol names of it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import httpx

from nirvana.cache import BlobCache
from nirvana.decoding import fetch_compact, supports_compact
from nirvana.errors import ServerUnreachableError
from nirvana.hub_types import TicketInfo
from nirvana.loading import build_pruned_model, manifest_of, relative_link
from nirvana.progress import bytes_bar

if TYPE_CHECKING:
    import torch


class _Fetcher(Protocol):
    """What the downloads need of a client."""

    url: str
    offline: bool
    cache: BlobCache
    _http: httpx.Client

    def ticket(self, id: str) -> TicketInfo: ...


class TicketDownloads:
    """``download`` and ``load``, mixed into :class:`nirvana.Client`."""

    def download(
        self: _Fetcher,
        id: str,
        out_dir: str | Path | None = None,
        *,
        progress: bool = False,
        force_download: bool = False,
        format: str = "compact",
    ) -> Path:
        """Write ``ticket.json``, ``mask.safetensors`` and ``init.safetensors`` of a
        ticket into a folder that ``push`` and ``TicketFolder.read`` accept.

        Args:
            id: the full id or a unique prefix of at least 12 characters.
            out_dir: the folder (created if needed; default ``./<short id>``).
            progress: show download progress on stderr.
            force_download: fetch the files again even when the cache holds them.
            format: ``"compact"`` fetches the packed mask and the kept init (or
                regenerates a seed's init) and rebuilds the dense files, digest-checked
                (:mod:`nirvana.decoding`); ``"dense"`` fetches the dense files.

        Returns:
            The folder.

        Raises:
            TicketNotFoundError, DigestMismatchError, OfflineError (offline and not
            cached), ServerUnreachableError.
        """
        ticket, mask_path, init_path = _fetch_all(self, id, progress=progress, force=force_download, format=format, exact=True)
        out = Path(out_dir) if out_dir is not None else Path.cwd() / ticket.short_id
        out.mkdir(parents=True, exist_ok=True)
        (out / "ticket.json").write_text(json.dumps(manifest_of(ticket.model_dump(mode="json")), indent=2) + "\n")
        shutil.copyfile(mask_path, out / "mask.safetensors")
        shutil.copyfile(init_path, out / "init.safetensors")
        return out

    def load(
        self: _Fetcher, id: str, *, device: str = "cpu", force_download: bool = False, format: str = "compact"
    ) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
        """The ticket as a PyTorch model, in one call.

        Downloads (or reads from the cache) the mask and init, builds the architecture
        for the ticket's task, loads the init weights, and prunes every masked
        parameter with ``torch.nn.utils.prune.custom_from_mask``, so the mask stays
        applied while you train. Files are read with safetensors, never ``torch.load``.

        Args:
            id: the full id or a unique prefix of at least 12 characters.
            device: where to put the model and the mask.
            force_download: fetch the files again even when the cache holds them.
            format: as in :meth:`download`; compact loads may give pruned weights
                as zeros (the masked model is the same either way).

        Returns:
            ``(model, mask)``; ``mask`` maps parameter names to BOOL tensors.

        Raises:
            As :meth:`download`; ``lottery`` errors if the files do not fit the
            architecture.
        """
        ticket, mask_path, init_path = _fetch_all(self, id, progress=False, force=force_download, format=format, exact=False)
        return build_pruned_model(ticket.model_dump(mode="json"), mask_path, init_path, device=device)


def _fetch_all(
    client: _Fetcher, id: str, *, progress: bool, force: bool = False, format: str = "dense", exact: bool = True
) -> tuple[TicketInfo, Path, Path]:
    """The ticket and the cached paths of its dense mask and init files: rebuilt from
    the compact forms when ``format="compact"`` and the server offers them, else the
    dense files as served."""
    if format not in ("compact", "dense"):
        raise ValueError(f"format must be 'compact' or 'dense', not {format!r}")
    ticket = client.ticket(id)
    answer = ticket.model_dump(mode="json")
    if format == "compact" and supports_compact(answer):
        mask_path, init_path = fetch_compact(
            client.cache, answer, lambda kind, link: _fetch(client, ticket, kind, link, progress=progress, force=force),
            exact=exact,
        )  # fmt: skip
        return ticket, mask_path, init_path
    found = [
        _fetch(client, ticket, kind, _dense_link(ticket, kind), progress=progress, force=force)
        for kind in ("mask", "init")
    ]
    return ticket, found[0], found[1]


def _dense_link(ticket: TicketInfo, kind: str) -> str:
    link = getattr(ticket.links, kind) if ticket.links is not None else None
    return str(link) if link else f"/api/v1/tickets/{ticket.id}/{kind}"


def _fetch(client: _Fetcher, ticket: TicketInfo, kind: str, link: str, *, progress: bool, force: bool = False) -> Path:
    """The verified cached file behind ``link``, remembered as ``kind`` in the ref."""
    bar = bytes_bar(f"{ticket.short_id} {kind}") if progress and not client.offline else None
    try:
        return client.cache.fetch(
            client._http, relative_link(link), ticket_id=ticket.id, kind=kind, offline=client.offline,
            force=force, on_bytes=bar.update_to if bar is not None else None,
        )  # fmt: skip
    except httpx.TransportError as exc:
        raise ServerUnreachableError(f"cannot reach {client.url} ({type(exc).__name__}: {exc})") from None
    finally:
        if bar is not None:
            bar.close()

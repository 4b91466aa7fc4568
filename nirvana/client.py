"""The Python client of the Nirvana HTTP API.

```python
from nirvana import Client

client = Client()                                  # NIRVANA_URL, NIRVANA_TOKEN, NIRVANA_HOME
best = next(client.tickets(task="mnist1d", verified=True, sort="-sparsity"))
model, mask = client.load(best["id"])              # a torch module, pruned in place
```

Reads are anonymous; the token goes only with writes (upload, cancel, verify_on), so
``$NIRVANA_HOME/token`` never reaches another server through a read. Downloads go
through a sha256-keyed cache (:mod:`nirvana.cache`); ``NIRVANA_OFFLINE=1`` uses only it.
"""

from __future__ import annotations

import json
import re
import os
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from nirvana import paths
from nirvana.cache import BlobCache
from nirvana.loading import build_pruned_model, is_uuid, manifest_of, relative_link, tensor_bytes
from nirvana.progress import bytes_bar
from nirvana.transport import send
from nirvana.waiting import poll_until_finished
from nirvana.errors import (
    NirvanaError,
    OfflineError,
    ServerUnreachableError,
    TicketFolderError,
    UnauthorizedError,
    raise_for_problem,
)

if TYPE_CHECKING:
    import torch

DEFAULT_URL = "http://127.0.0.1:8000"
_TICKET_ID = re.compile(r"[0-9a-f]{64}")


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


class Client:
    """A connection to one Nirvana server.

    Args:
        url: the server, e.g. ``http://127.0.0.1:8000`` (default: ``NIRVANA_URL``, else
            that). A trailing ``/api/v1`` is accepted.
        token: a bearer token for writes (default: ``NIRVANA_TOKEN``, else the file
            ``$NIRVANA_HOME/token`` that ``nirvana serve`` writes).
        home: ``NIRVANA_HOME``; the cache lives in ``home/cache``.
        timeout: seconds to wait for the server on each request.
        offline: serve downloads from the cache only (default: ``NIRVANA_OFFLINE``).
    """

    def __init__(
        self,
        *,
        url: str | None = None,
        token: str | None = None,
        home: str | Path | None = None,
        timeout: float = 30.0,
        offline: bool | None = None,
    ) -> None:
        self.home = paths.home(home)
        base = (url or os.environ.get("NIRVANA_URL") or DEFAULT_URL).rstrip("/")
        self.url = base.removesuffix("/api/v1")
        self.token = token or os.environ.get("NIRVANA_TOKEN") or paths.read_token_file(self.home)
        self.offline = _truthy(os.environ.get("NIRVANA_OFFLINE")) if offline is None else offline
        self.cache = BlobCache(paths.cache_dir(self.home))
        self._http = httpx.Client(
            base_url=self.url + "/api/v1", timeout=timeout, headers={"User-Agent": "nirvana-client/0.1"}
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- plumbing ---------------------------------------------------------------

    def _request(self, method: str, path: str, *, write: bool = False, **kwargs: Any) -> httpx.Response:
        # Checked before any request, so an offline machine never waits on a timeout.
        if self.offline:
            raise OfflineError(f"NIRVANA_OFFLINE is set; not sending {method} {path}")
        headers = dict(kwargs.pop("headers", None) or {})
        if write:
            if not self.token:
                raise UnauthorizedError(
                    "this needs a token: pass token=..., set NIRVANA_TOKEN, or run `nirvana token create`",
                    code="unauthorized",
                )
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            response = send(self._http, method, path, headers=headers, **kwargs)
        except httpx.TransportError as exc:
            raise ServerUnreachableError(
                f"cannot reach {self.url} ({type(exc).__name__}: {exc}); is `nirvana serve` running?"
            ) from None
        raise_for_problem(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._request(method, path, **kwargs).json()

    # --- reads ------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """The server's ``/health`` answer. Raises ``ServerUnreachableError`` if none."""
        return dict(self._json("GET", "/health"))

    def ticket(self, id: str) -> dict[str, Any]:
        """One ticket with its verifications.

        Args:
            id: the full 64-hex id or a unique prefix of at least 12 characters.

        Returns:
            The ticket JSON (``id``, ``architecture``, ``task``, ``sparsity``,
            ``verifications``, ``links``, ...). Offline, the copy cached by the last
            download of that ticket.

        Raises:
            TicketNotFoundError, AmbiguousIdError, InvalidRequestError; OfflineError
            when offline and not cached.
        """
        if self.offline:
            full = self.cache.resolve(id)
            cached = self.cache.read_ref(full).get("ticket") if full else None
            if not cached:
                raise OfflineError(f"NIRVANA_OFFLINE is set and ticket {id} is not in the cache")
            return dict(cached)
        ticket = dict(self._json("GET", f"/tickets/{id}"))
        # The id names files in the cache and folders on disk: never trust it blindly.
        if not isinstance(ticket.get("id"), str) or not _TICKET_ID.fullmatch(ticket["id"]):
            raise NirvanaError(f"the server answered a malformed ticket id {ticket.get('id')!r}", code="bad_response")
        self.cache.write_ref(ticket["id"], ticket=ticket)
        return ticket

    def tickets(
        self,
        *,
        task: str | None = None,
        arch: str | None = None,
        tag: str | None = None,
        min_sparsity: float | None = None,
        max_sparsity: float | None = None,
        verified: bool | None = None,
        sort: str | None = None,
        limit: int | None = None,
        page_size: int = 100,
        verdict: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Tickets matching every filter given, following ``next_cursor`` page by page.

        Args:
            task, arch, tag: exact matches. min_sparsity, max_sparsity: in [0, 1].
            verified: only tickets whose verification succeeded (True) or not (False).
            verdict: ``winning``, ``not_winning``, ``not_reproduced`` or ``pending``.
            sort: ``sparsity``, ``-sparsity``, ``accuracy``, ``-accuracy``, ``created``,
                ``-created`` (the server's default) or ``rank`` (winning first, sparsest first).
            limit: stop after this many tickets (default: all of them).
            page_size: tickets per request (the server caps it at 200).

        Returns:
            An iterator of ticket summaries; pages are fetched as it is consumed.

        Raises:
            InvalidRequestError: a bad filter or sort.
        """
        params: dict[str, Any] = {
            "task": task, "arch": arch, "tag": tag, "min_sparsity": min_sparsity,
            "max_sparsity": max_sparsity, "sort": sort, "verdict": verdict,
        }  # fmt: skip
        if verified is not None:
            params["verified"] = "true" if verified else "false"
        params = {k: v for k, v in params.items() if v is not None}
        remaining = limit
        cursor: str | None = None
        while remaining is None or remaining > 0:
            size = page_size if remaining is None else min(page_size, remaining)
            page = self._json("GET", "/tickets", params={**params, "limit": size, **({"cursor": cursor} if cursor else {})})
            for item in page["items"]:
                yield item
            if remaining is not None:
                remaining -= len(page["items"])
            cursor = page.get("next_cursor")
            if not cursor or not page["items"]:
                return

    def tasks(self) -> list[dict[str, Any]]:
        """Every task the server knows: ``name``, ``input_shape``, ``num_classes``,
        ``available`` (its data is on the server), ``ticket_count``, ..."""
        return list(self._json("GET", "/tasks")["items"])

    def architecture(self, name: str, *, task: str) -> dict[str, Any]:
        """``name``'s parameters on ``task``: ``{name, task, parameters: [{name,
        shape, prunable}], total, prunable}``. Raises ``UnknownArchitectureError``,
        ``UnknownTaskError``."""
        return dict(self._json("GET", f"/architectures/{name}", params={"task": task}))

    def verification(self, id: str) -> dict[str, Any]:
        """One verification: ``state``, ``progress`` in [0, 1], ``attempts``,
        ``result``, ``error``. Raises ``VerificationNotFoundError``."""
        return dict(self._json("GET", f"/verifications/{id}"))

    # --- writes -----------------------------------------------------------------

    def upload(
        self,
        manifest: Mapping[str, Any] | bytes,
        mask: Mapping[str, torch.Tensor] | bytes,
        init: Mapping[str, torch.Tensor] | bytes | None = None,
    ) -> dict[str, Any]:
        """Upload a ticket; its verification is queued in the same transaction.

        Args:
            manifest: the ``ticket.json`` content (a dict, or its bytes).
            mask: one BOOL tensor per prunable parameter, or ``mask.safetensors`` bytes.
            init: the init ``state_dict`` or its safetensors bytes; needed only when
                ``rewind_step > 0`` (the server regenerates a seed's init).

        Returns:
            The stored ticket JSON, with ``created`` True when it is new (False when
            the same ticket was already there).

        Raises:
            UnauthorizedError, ForbiddenError: no token, or one without ``write``.
            InvalidManifestError, InvalidMaskError, InvalidInitError,
            InvalidSafetensorsError, PayloadTooLargeError: what the server refused.
        """
        manifest_bytes = manifest if isinstance(manifest, bytes) else json.dumps(dict(manifest)).encode()
        files = {
            "manifest": ("ticket.json", manifest_bytes, "application/json"),
            "mask": ("mask.safetensors", tensor_bytes(mask), "application/octet-stream"),
        }
        if init is not None:
            files["init"] = ("init.safetensors", tensor_bytes(init), "application/octet-stream")
        response = self._request("POST", "/tickets", write=True, files=files)
        ticket = dict(response.json())
        ticket["created"] = response.status_code == 201
        return ticket

    def push(self, folder: str | Path) -> dict[str, Any]:
        """Upload a ticket folder (``ticket.json``, ``mask.safetensors`` and, if
        present, ``init.safetensors``) as they are on disk. Returns and raises as
        :meth:`upload`, plus ``TicketFolderError`` for a folder missing a file."""
        root = Path(folder)
        manifest, mask, init = root / "ticket.json", root / "mask.safetensors", root / "init.safetensors"
        for required in (manifest, mask):
            if not required.is_file():
                raise TicketFolderError(f"{root} is not a ticket folder: {required.name} is missing")
        return self.upload(manifest.read_bytes(), mask.read_bytes(), init.read_bytes() if init.is_file() else None)

    def cancel(self, verification_id: str) -> dict[str, Any]:
        """Ask to stop a verification (queued: at once; running: within a heartbeat)."""
        return dict(self._json("POST", f"/verifications/{verification_id}/cancel", write=True))

    def verify_on(self, id: str, *, task: str, recipe: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Queue a transfer evaluation: retrain ticket ``id`` on another ``task`` (its
        default recipe unless ``recipe`` is given). Needs a token with the ``verify``
        scope. Returns the queued verification; follow it with :meth:`wait`.

        Raises:
            TaskUnavailableError, IncompatibleTaskError, ForbiddenError.
        """
        body: dict[str, Any] = {"task": task, **({"recipe": dict(recipe)} if recipe is not None else {})}
        return dict(self._json("POST", f"/tickets/{id}/verifications", write=True, json=body))

    # --- waiting ----------------------------------------------------------------

    def wait(
        self,
        id: str,
        *,
        timeout: float | None = None,
        poll_interval: float = 2.0,
        progress: bool = True,
    ) -> dict[str, Any]:
        """Poll a verification until it is succeeded, failed or cancelled.

        Args:
            id: a verification id (a UUID), or a ticket id/prefix: then its most
                recent verification.
            timeout: seconds to wait at most (default: forever).
            poll_interval: seconds between polls.
            progress: show a progress bar on stderr.

        Returns:
            The finished verification; check its ``state`` (a failure is a result,
            not an exception).

        Raises:
            WaitTimeoutError, TicketNotFoundError, VerificationNotFoundError, and a
            ``NirvanaError`` when the ticket has no verification at all.
        """
        verification_id = str(self.resolve_verification(id)["id"])
        return poll_until_finished(
            lambda: self.verification(verification_id),
            label=f"verification {verification_id[:8]}",
            timeout=timeout,
            poll_interval=poll_interval,
            progress=progress,
        )

    def resolve_verification(self, id: str) -> dict[str, Any]:
        """A verification by its id (a UUID), or a ticket's latest one by ticket id."""
        return self.verification(id) if is_uuid(id) else self.latest_verification(id)

    def latest_verification(self, ticket_id: str) -> dict[str, Any]:
        """The most recently queued verification of a ticket (id or prefix).

        Raises:
            TicketNotFoundError; ``NirvanaError`` (``no_verification``) if it has none.
        """
        verifications = self.ticket(ticket_id).get("verifications") or []
        if not verifications:
            raise NirvanaError(f"ticket {ticket_id} has no verification", code="no_verification")
        return dict(max(verifications, key=lambda v: str(v.get("created_at") or "")))

    # --- downloads --------------------------------------------------------------

    def download(self, id: str, out_dir: str | Path | None = None, *, progress: bool = False) -> Path:
        """Write ``ticket.json``, ``mask.safetensors`` and ``init.safetensors`` of a
        ticket into a folder that ``push`` and ``TicketFolder.read`` accept.

        Args:
            id: the full id or a unique prefix of at least 12 characters.
            out_dir: the folder (created if needed; default ``./<short id>``).
            progress: show download progress on stderr.

        Returns:
            The folder.

        Raises:
            TicketNotFoundError, DigestMismatchError, OfflineError (offline and not
            cached), ServerUnreachableError.
        """
        ticket, mask_path, init_path = self._fetch_all(id, progress=progress)
        out = Path(out_dir) if out_dir is not None else Path.cwd() / ticket["id"][:12]
        out.mkdir(parents=True, exist_ok=True)
        (out / "ticket.json").write_text(json.dumps(manifest_of(ticket), indent=2) + "\n")
        shutil.copyfile(mask_path, out / "mask.safetensors")
        shutil.copyfile(init_path, out / "init.safetensors")
        return out

    def load(self, id: str, *, device: str = "cpu") -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
        """The ticket as a PyTorch model, in one call.

        Downloads (or reads from the cache) the mask and init, builds the architecture
        for the ticket's task, loads the init weights, and prunes every masked
        parameter with ``torch.nn.utils.prune.custom_from_mask``, so the mask stays
        applied while you train. Files are read with safetensors, never ``torch.load``.

        Args:
            id: the full id or a unique prefix of at least 12 characters.
            device: where to put the model and the mask.

        Returns:
            ``(model, mask)``; ``mask`` maps parameter names to BOOL tensors.

        Raises:
            As :meth:`download`; ``lottery`` errors if the files do not fit the
            architecture.
        """
        ticket, mask_path, init_path = self._fetch_all(id, progress=False)
        return build_pruned_model(ticket, mask_path, init_path, device=device)

    def _fetch_all(self, id: str, *, progress: bool) -> tuple[dict[str, Any], Path, Path]:
        ticket = self.ticket(id)
        full = ticket["id"]
        found = []
        for kind in ("mask", "init"):
            link = ticket.get("links", {}).get(kind) or f"/api/v1/tickets/{full}/{kind}"
            bar = bytes_bar(f"{ticket['short_id']} {kind}") if progress and not self.offline else None
            try:
                found.append(
                    self.cache.fetch(
                        self._http, relative_link(link), ticket_id=full, kind=kind, offline=self.offline,
                        on_bytes=bar.update_to if bar is not None else None,
                    )  # fmt: skip
                )
            except httpx.TransportError as exc:
                raise ServerUnreachableError(f"cannot reach {self.url} ({type(exc).__name__}: {exc})") from None
            finally:
                if bar is not None:
                    bar.close()
        return ticket, found[0], found[1]

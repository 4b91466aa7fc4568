"""The Python client of the Nirvana HTTP API.

```python
from nirvana import Client

client = Client()                                  # NIRVANA_URL, or Client("http://host:port")
best = next(client.tickets(task="mnist1d", verified=True, sort="-sparsity"))
model, mask = client.load(best.id)                 # a torch module, pruned in place
```

Answers are typed (:mod:`nirvana.hub_types`: ``TicketInfo``, ``VerificationInfo``,
``TaskInfo``). Reads are anonymous; the token (``NIRVANA_TOKEN``, else the one
``nirvana login`` stored) goes only with writes (upload, cancel, verify_on), so it never
reaches another server through a read. Transient failures are retried with backoff
(:mod:`nirvana.transport`). Downloads go through a sha256-keyed cache of the client's
own (:mod:`nirvana.cache`, ``NIRVANA_CACHE``); ``NIRVANA_OFFLINE=1`` uses only it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import pydantic

from nirvana import paths
from nirvana.cache import BlobCache
from nirvana.hub_types import ArchitectureInfo, TaskInfo, TicketInfo, VerificationInfo
from nirvana.downloads import TicketDownloads
from nirvana.loading import is_uuid, tensor_bytes
from nirvana.transport import RetryingTransport, idempotent_write
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
_T = TypeVar("_T", bound=pydantic.BaseModel)
_TICKET_ID = re.compile(r"[0-9a-f]{64}")


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def _parse(model: type[_T], body: Any) -> _T:
    """``body`` as ``model``; an answer that does not fit is the server's fault, said so."""
    try:
        return model.model_validate(body)
    except pydantic.ValidationError as exc:
        raise NirvanaError(f"the server's answer is not a {model.__name__}: {exc}", code="bad_response") from None


class Client(TicketDownloads):
    """A connection to one Nirvana server.

    Args:
        url: the server, e.g. ``http://127.0.0.1:8000`` (default: ``NIRVANA_URL``, else
            that). A trailing ``/api/v1`` is accepted. ``Client(url)`` works too.
        token: a bearer token for writes (default: ``NIRVANA_TOKEN``, else the file
            ``$NIRVANA_HOME/token`` that ``nirvana login`` or ``nirvana serve`` wrote).
        home: ``NIRVANA_HOME``, where the token file is.
        cache_dir: the download cache (default: ``NIRVANA_CACHE``, else the user's
            cache directory, e.g. ``~/.cache/nirvana``).
        timeout: seconds to wait for the server on each request.
        offline: serve downloads from the cache only (default: ``NIRVANA_OFFLINE``).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        token: str | None = None,
        home: str | Path | None = None,
        cache_dir: str | Path | None = None,
        timeout: float = 30.0,
        offline: bool | None = None,
    ) -> None:
        self.home = paths.home(home)
        base = (url or os.environ.get("NIRVANA_URL") or DEFAULT_URL).rstrip("/")
        self.url = base.removesuffix("/api/v1")
        self.token = token or os.environ.get("NIRVANA_TOKEN") or paths.read_token_file(self.home)
        self.offline = _truthy(os.environ.get("NIRVANA_OFFLINE")) if offline is None else offline
        self.cache = BlobCache(paths.cache_dir(cache_dir))
        self._http = httpx.Client(
            base_url=self.url + "/api/v1",
            timeout=timeout,
            headers={"User-Agent": "nirvana-client/0.1"},
            transport=RetryingTransport(),
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
                    "this needs a token: run `nirvana login`, set NIRVANA_TOKEN, or pass token=...",
                    code="unauthorized",
                )
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            response = self._http.request(method, path, headers=headers, **kwargs)
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

    def ticket(self, id: str) -> TicketInfo:
        """One ticket with its verifications.

        Args:
            id: the full 64-hex id or a unique prefix of at least 12 characters.

        Returns:
            The ticket (``id``, ``architecture``, ``task``, ``sparsity``,
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
            return TicketInfo.model_validate(cached)
        body = self._json("GET", f"/tickets/{id}")
        # The id names files in the cache and folders on disk: never trust it blindly.
        if not isinstance(body, dict) or not isinstance(body.get("id"), str) or not _TICKET_ID.fullmatch(body["id"]):
            shown = body.get("id") if isinstance(body, dict) else body
            raise NirvanaError(f"the server answered a malformed ticket id {shown!r}", code="bad_response")
        ticket = _parse(TicketInfo, body)
        self.cache.write_ref(ticket.id, ticket=ticket.model_dump(mode="json"))
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
        max_params: int | None = None,
        verdict: str | None = None,
    ) -> Iterator[TicketInfo]:
        """Tickets matching every filter given, following ``next_cursor`` page by page.

        Args:
            task, arch, tag: exact matches. min_sparsity, max_sparsity: in [0, 1].
            verified: only tickets whose verification succeeded (True) or not (False).
            verdict: ``winning``, ``not_winning``, ``not_reproduced`` or ``pending``.
            sort: ``sparsity``, ``-sparsity``, ``accuracy``, ``-accuracy``, ``created``,
                ``-created`` (the server's default) or ``rank`` (winning first, sparsest first).
            limit: stop after this many tickets (default: all of them).
            page_size: tickets per request (the server caps it at 200).
            max_params: at most this many parameters kept (``footprint.parameters_kept``).

        Returns:
            An iterator of ticket summaries; pages are fetched as it is consumed.

        Raises:
            InvalidRequestError: a bad filter or sort.
        """
        params: dict[str, Any] = {
            "task": task, "arch": arch, "tag": tag, "min_sparsity": min_sparsity,
            "max_sparsity": max_sparsity, "sort": sort, "max_params": max_params, "verdict": verdict,
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
                yield _parse(TicketInfo, item)
            if remaining is not None:
                remaining -= len(page["items"])
            cursor = page.get("next_cursor")
            if not cursor or not page["items"]:
                return

    def tasks(self) -> list[TaskInfo]:
        """Every task the server knows: ``name``, ``input_shape``, ``num_classes``,
        ``available`` (its data is on the server), ``ticket_count``, ..."""
        return [_parse(TaskInfo, item) for item in self._json("GET", "/tasks")["items"]]

    def architecture(self, name: str, *, task: str) -> ArchitectureInfo:
        """``name``'s parameters on ``task``: ``name``, ``task``, ``parameters``
        (``name``, ``shape``, ``prunable``), ``total``, ``prunable``. Raises
        ``UnknownArchitectureError``, ``UnknownTaskError``."""
        return _parse(ArchitectureInfo, self._json("GET", f"/architectures/{name}", params={"task": task}))

    def verification(self, id: str) -> VerificationInfo:
        """One verification: ``state``, ``progress`` in [0, 1], ``attempts``,
        ``result``, ``error``. Raises ``VerificationNotFoundError``."""
        return _parse(VerificationInfo, self._json("GET", f"/verifications/{id}"))

    # --- writes -----------------------------------------------------------------

    def upload(
        self,
        manifest: Mapping[str, Any] | bytes,
        mask: Mapping[str, torch.Tensor] | bytes,
        init: Mapping[str, torch.Tensor] | bytes | None = None,
    ) -> TicketInfo:
        """Upload a ticket; its verification is queued in the same transaction.

        Sent again whole after a transient failure: the ticket's id is its content, so
        a second arrival stores nothing new.

        Args:
            manifest: the ``ticket.json`` content (a dict, or its bytes).
            mask: one BOOL tensor per prunable parameter, or ``mask.safetensors`` bytes.
            init: the init ``state_dict`` or its safetensors bytes; needed only when
                ``rewind_step > 0`` (the server regenerates a seed's init).

        Returns:
            The stored ticket, with ``created`` True when it is new (False when the
            same ticket was already there).

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
        response = self._request("POST", "/tickets", write=True, files=files, extensions=idempotent_write())
        return _parse(TicketInfo, {**response.json(), "created": response.status_code == 201})

    def push(self, folder: str | Path) -> TicketInfo:
        """Upload a ticket folder (``ticket.json``, ``mask.safetensors`` and, if
        present, ``init.safetensors``) as they are on disk. Returns and raises as
        :meth:`upload`, plus ``TicketFolderError`` for a folder missing a file."""
        root = Path(folder)
        manifest, mask, init = root / "ticket.json", root / "mask.safetensors", root / "init.safetensors"
        for required in (manifest, mask):
            if not required.is_file():
                raise TicketFolderError(f"{root} is not a ticket folder: {required.name} is missing")
        return self.upload(manifest.read_bytes(), mask.read_bytes(), init.read_bytes() if init.is_file() else None)

    def cancel(self, verification_id: str) -> VerificationInfo:
        """Ask to stop a verification (queued: at once; running: within a heartbeat).
        For the ticket's uploader, whoever queued it and admins; else ``ForbiddenError``
        (``not_owner``)."""
        return _parse(VerificationInfo, self._json("POST", f"/verifications/{verification_id}/cancel", write=True))

    def verify_on(self, id: str, *, task: str, recipe: Mapping[str, Any] | None = None) -> VerificationInfo:
        """Queue a transfer evaluation: retrain ticket ``id`` on another ``task`` (its
        default recipe unless ``recipe`` is given). Needs a token with the ``verify``
        scope. Returns the queued verification; follow it with :meth:`wait`.

        Raises:
            TaskUnavailableError, IncompatibleTaskError, ForbiddenError.
        """
        body: dict[str, Any] = {"task": task, **({"recipe": dict(recipe)} if recipe is not None else {})}
        return _parse(VerificationInfo, self._json("POST", f"/tickets/{id}/verifications", write=True, json=body))

    def verify_again(self, id: str) -> VerificationInfo:
        """Queue ticket ``id`` once more on its own task, under its own recipe and claim,
        after its verification there was cancelled or failed (the history keeps both).
        For its uploader or an admin. Returns the queued verification.

        Raises:
            ConflictError (``same_task``): one is queued, running or succeeded.
            ForbiddenError (``not_owner``): the token is neither the uploader's nor an admin's.
        """
        task = self.ticket(id).task
        return _parse(VerificationInfo, self._json("POST", f"/tickets/{id}/verifications", write=True, json={"task": task}))

    # --- waiting ----------------------------------------------------------------

    def wait(
        self,
        id: str,
        *,
        timeout: float | None = None,
        poll_interval: float = 2.0,
        progress: bool = True,
    ) -> VerificationInfo:
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
        verification_id = self.resolve_verification(id).id
        return poll_until_finished(
            lambda: self.verification(verification_id),
            label=f"verification {verification_id[:8]}",
            timeout=timeout,
            poll_interval=poll_interval,
            progress=progress,
        )

    def resolve_verification(self, id: str) -> VerificationInfo:
        """A verification by its id (a UUID), or a ticket's latest one by ticket id."""
        return self.verification(id) if is_uuid(id) else self.latest_verification(id)

    def latest_verification(self, ticket_id: str) -> VerificationInfo:
        """The most recently queued verification of a ticket (id or prefix).

        Raises:
            TicketNotFoundError; ``NirvanaError`` (``no_verification``) if it has none.
        """
        verifications = self.ticket(ticket_id).verifications
        if not verifications:
            raise NirvanaError(f"ticket {ticket_id} has no verification", code="no_verification")
        return max(verifications, key=lambda v: str(v.created_at or ""))

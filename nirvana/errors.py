"""Exceptions the client raises, one class per stable problem+json ``code``.

The server answers every error as RFC 9457 ``application/problem+json`` with a stable
``code`` (snake_case). :func:`raise_for_problem` turns such a response into the class
registered for its code, so callers catch what they mean
(``except TicketNotFoundError``) instead of parsing messages. A code this client does
not know yet raises the base :class:`NirvanaError`, so a newer server never breaks an
older client. Modelled on huggingface_hub's ``hf_raise_for_status``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import httpx


class NirvanaError(Exception):
    """Base of every error the client raises.

    Attributes:
        code: the stable snake_case code (``ticket_not_found``); client-side errors have
            their own (``offline``, ``digest_mismatch``).
        status: the HTTP status, or None for errors raised without a response.
        detail: a sentence for people.
        problem: the whole problem+json body, when there was one.
    """

    code: str = "error"
    codes: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        status: int | None = None,
        problem: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        self.status = status
        self.problem = problem or {}

    def __str__(self) -> str:
        return f"{self.detail} ({self.code})"


# --- errors the server reports --------------------------------------------------------


class NotFoundError(NirvanaError):
    code = "not_found"
    codes = ("not_found",)


class TicketNotFoundError(NotFoundError):
    code = "ticket_not_found"
    codes = ("ticket_not_found",)


class VerificationNotFoundError(NotFoundError):
    code = "verification_not_found"
    codes = ("verification_not_found",)


class UnknownTaskError(NotFoundError):
    code = "unknown_task"
    codes = ("unknown_task",)


class UnknownArchitectureError(NotFoundError):
    code = "unknown_architecture"
    codes = ("unknown_architecture",)


class AmbiguousIdError(NirvanaError):
    """An id prefix that matches more than one ticket."""

    code = "ambiguous_ticket_id"
    codes = ("ambiguous_ticket_id",)


class UnauthorizedError(NirvanaError):
    """No token, or a token the server does not accept."""

    code = "unauthorized"
    codes = ("unauthorized", "invalid_token")


class ForbiddenError(NirvanaError):
    """A valid token without the scope the request needs, or acting on someone else's
    verification (``not_owner``)."""

    code = "forbidden"
    codes = ("forbidden", "insufficient_scope", "not_owner")


class InvalidRequestError(NirvanaError):
    """A malformed query: a bad parameter, sort key, cursor or ticket id."""

    code = "validation_error"
    codes = ("validation_error", "invalid_cursor", "invalid_sort", "invalid_ticket_id")


class RangeNotSatisfiableError(NirvanaError):
    code = "range_not_satisfiable"
    codes = ("range_not_satisfiable",)


class InvalidTicketError(NirvanaError):
    """Base of the errors in what was uploaded (the server's ``LotteryError``s)."""

    code = "invalid_ticket"
    codes: ClassVar[tuple[str, ...]] = ("invalid_ticket",)


class InvalidManifestError(InvalidTicketError):
    code = "invalid_manifest"
    codes = ("invalid_manifest", "invalid_claim", "init_required", "invalid_recipe", "unknown_init_scheme", "own_terms")


class InvalidMaskError(InvalidTicketError):
    code = "invalid_mask"
    codes = ("invalid_mask",)


class InvalidInitError(InvalidTicketError):
    code = "invalid_init"
    codes = ("invalid_init", "init_mismatch")


class InvalidSafetensorsError(InvalidTicketError):
    code = "invalid_safetensors"
    codes = ("invalid_safetensors",)


class IncompatibleTaskError(InvalidTicketError):
    code = "incompatible_task"
    codes = ("incompatible_task",)


class TaskUnavailableError(NirvanaError):
    code = "task_unavailable"
    codes = ("task_unavailable", "invalid_dataset")


class ConflictError(NirvanaError):
    """The request conflicts with the resource's state (e.g. cancelling a finished job)."""

    code = "conflict"
    codes = ("conflict", "same_task")


class PayloadTooLargeError(NirvanaError):
    code = "payload_too_large"
    codes = ("payload_too_large",)


class RateLimitedError(NirvanaError):
    """Too many requests; ``retry_after`` is the server's ``Retry-After`` in seconds."""

    code = "rate_limited"
    codes = ("rate_limited", "too_many_requests")
    retry_after: float | None = None


# --- errors raised on this side -------------------------------------------------------


class ServerUnreachableError(NirvanaError):
    """No HTTP answer at all (nothing listening, DNS, timeout)."""

    code = "unreachable"


class OfflineError(NirvanaError):
    """``NIRVANA_OFFLINE=1`` and what was asked for is not in the cache."""

    code = "offline"


class DigestMismatchError(NirvanaError):
    """A download whose sha256 differs from the server's ``ETag``; the file was removed."""

    code = "digest_mismatch"


class TicketFolderError(NirvanaError):
    """A folder that is not a ticket (no ``ticket.json`` or ``mask.safetensors``)."""

    code = "invalid_folder"


class WaitTimeoutError(NirvanaError):
    """A verification that did not finish within the time :meth:`Client.wait` was given."""

    code = "wait_timeout"


class PortInUseError(NirvanaError):
    """``nirvana serve``/``nirvana api`` asked to listen on a port something else holds."""

    code = "port_in_use"


def _registry() -> dict[str, type[NirvanaError]]:
    table: dict[str, type[NirvanaError]] = {}
    stack: list[type[NirvanaError]] = [NirvanaError]
    while stack:
        cls = stack.pop()
        # Only a class's own codes: a subclass without any must not re-register its parent's.
        for code in cls.__dict__.get("codes", ()):
            table[code] = cls
        stack.extend(cls.__subclasses__())
    return table


# When the body names no code (a proxy's HTML page, an old server), the status decides.
_BY_STATUS: dict[int, type[NirvanaError]] = {
    401: UnauthorizedError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: InvalidTicketError,
    429: RateLimitedError,
}


def error_class(code: str | None, status: int | None = None) -> type[NirvanaError]:
    """The class registered for ``code``; else the one for ``status`` (a code newer than
    this client still lands in the right family, and keeps its code); else the base."""
    if code:
        cls = _registry().get(code)
        if cls is not None:
            return cls
    if status is not None:
        return _BY_STATUS.get(status, NirvanaError)
    return NirvanaError


def _detail_of(body: Any, response: httpx.Response) -> str:
    if isinstance(body, dict):
        detail = body.get("detail")
        if isinstance(detail, list):  # FastAPI's own 422: a list of {loc, msg}
            parts = [
                f"{'.'.join(str(p) for p in item.get('loc', []))}: {item.get('msg')}"
                for item in detail
                if isinstance(item, dict)
            ]
            return "; ".join(parts) or "invalid request"
        if detail:
            return str(detail)
        if body.get("title"):
            return str(body["title"])
    text = response.text.strip() if response.content else ""
    reason = response.reason_phrase or "error"
    return f"HTTP {response.status_code} {reason}" + (f": {text[:200]}" if text else "")


def raise_for_problem(response: httpx.Response) -> None:
    """Raise the :class:`NirvanaError` subclass for an error response; return otherwise.

    Args:
        response: a response whose body has been read (not a still-open stream).

    Raises:
        NirvanaError: the subclass registered for the problem's ``code`` (also read from
            an ``X-Error-Code`` header), else the one for the HTTP status, else the base
            class. ``status``, ``detail`` and ``problem`` carry what the server said.
    """
    if response.status_code < 400:
        return
    body: Any = None
    try:
        body = response.json()
    except ValueError:
        body = None
    problem = body if isinstance(body, dict) else {}
    code = problem.get("code") or response.headers.get("x-error-code")
    code = str(code) if code else None
    cls = error_class(code, response.status_code)
    error = cls(
        _detail_of(body, response),
        code=code or (cls.code if cls is not NirvanaError else f"http_{response.status_code}"),
        status=response.status_code,
        problem=problem,
    )
    if isinstance(error, RateLimitedError):
        try:
            error.retry_after = float(response.headers["retry-after"])
        except (KeyError, ValueError):
            pass
    raise error

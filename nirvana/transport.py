"""Sending requests the way a polite client does: transient failures are retried with
exponential backoff and jitter (stamina, over tenacity), never with loops of our own.

What counts as transient, and for which requests:

- a connection that could not be opened (``ConnectError``, ``ConnectTimeout``): the
  request never reached the server, so every request is retried;
- 502, 503, 504 answers, and any other transport error (a read timeout, a dropped
  connection): retried only for *idempotent* requests, i.e. GET and HEAD, and writes
  that the caller marks with :data:`IDEMPOTENT` (an upload: its id is its content, so
  sending it twice stores it once);
- 429 on a read: retried after the server's ``Retry-After`` when that is at most
  :data:`MAX_RETRY_AFTER` seconds (a longer wait is the caller's decision: the 429 is
  raised). A write answered 429 is never retried.

When the attempts run out, the last answer (or the last transport error) goes to the
caller as if no retry had happened. The retries live in an httpx transport, so the
client's JSON calls and its streamed downloads get the same policy; a download is only
retried before its body starts, and the body's own resumption is :mod:`nirvana.cache`'s.
Tests can turn the backoff off with ``stamina.set_testing(True, attempts=N)``.
"""

from __future__ import annotations

import functools
from typing import Any

import httpx
import stamina

#: Put ``{IDEMPOTENT: True}`` in a request's ``extensions`` to let a write be retried whole.
IDEMPOTENT = "nirvana_idempotent"
#: Waits longer than this are the caller's decision: the 429 is raised instead.
MAX_RETRY_AFTER = 30.0
#: Tries in all (the first one included) and the time they may take together.
ATTEMPTS = 5
RETRY_TIMEOUT = 60.0
TRANSIENT_STATUSES = frozenset({502, 503, 504})
SAFE_METHODS = frozenset({"GET", "HEAD"})
_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout)


class _TransientAnswer(Exception):
    """An answer worth another try; carries it, so the last one can be handed back."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


def retry_after(response: httpx.Response) -> float | None:
    """The ``Retry-After`` header in seconds (the delta-seconds form), or None."""
    try:
        return max(0.0, float(response.headers.get("retry-after", "")))
    except ValueError:
        return None


def _backoff_hook(exc: Exception, *, idempotent: bool) -> bool | float:
    """stamina's ``on`` hook: False to give up, True for the exponential backoff, a
    number of seconds to wait exactly that long (a 429's ``Retry-After``)."""
    if isinstance(exc, _TransientAnswer):
        if exc.response.status_code == 429:
            wait = retry_after(exc.response)
            return False if wait is None or wait > MAX_RETRY_AFTER else wait
        return True
    if isinstance(exc, _NEVER_SENT):
        return True
    return idempotent and isinstance(exc, httpx.TransportError)


def _is_transient(response: httpx.Response, *, read: bool, idempotent: bool) -> bool:
    if response.status_code == 429:
        return read
    return idempotent and response.status_code in TRANSIENT_STATUSES


class RetryingTransport(httpx.BaseTransport):
    """An httpx transport that retries what the module docstring calls transient.

    Args:
        inner: the transport that sends (default: ``httpx.HTTPTransport()``).
        attempts: tries in all, the first included.
        timeout: seconds all tries of one request may take together.
    """

    def __init__(
        self, inner: httpx.BaseTransport | None = None, *, attempts: int = ATTEMPTS, timeout: float = RETRY_TIMEOUT
    ) -> None:
        self.inner = inner if inner is not None else httpx.HTTPTransport()
        self.attempts = attempts
        self.timeout = timeout

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        read = request.method in SAFE_METHODS
        idempotent = read or bool(request.extensions.get(IDEMPOTENT))
        request.read()  # a body sent again must be the same bytes: hold them
        hook = functools.partial(_backoff_hook, idempotent=idempotent)
        try:
            for attempt in stamina.retry_context(on=hook, attempts=self.attempts, timeout=self.timeout):
                with attempt:
                    response = self.inner.handle_request(request)
                    if _is_transient(response, read=read, idempotent=idempotent):
                        response.read()
                        response.close()
                        raise _TransientAnswer(response)
                    return response
        except _TransientAnswer as exc:
            return exc.response  # out of tries: the caller sees the last answer
        raise AssertionError("unreachable: stamina either returns a response or raises")

    def close(self) -> None:
        self.inner.close()


def idempotent_write() -> dict[str, Any]:
    """The ``extensions`` of a write that may be sent again (see :data:`IDEMPOTENT`)."""
    return {IDEMPOTENT: True}

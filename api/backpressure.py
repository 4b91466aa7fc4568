"""Backpressure: a bounded number of requests in flight per API process.

A request beyond ``max_in_flight`` is answered at once with 503 and ``Retry-After``,
before any body is read or any query runs: excess load is turned away quickly instead
of queueing behind the database pool until a client times out. A pool that stays
exhausted past its timeout answers 503 the same way.

The default thread pool gets at least one thread per admitted request. Each request
holds at most one of those threads at a time (its route, its response's serialisation,
a chunk of a streamed body), so no request ever waits for a thread while holding a
database connection another request needs: the stall this module exists to prevent.
"""

from __future__ import annotations

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import problem_response

RETRY_AFTER_SECONDS = 1
# Threads beyond the in-flight bound, for the lifespan and StaticFiles' own lookups.
THREAD_HEADROOM = 8
UNBOUNDED_PATHS = ("/metrics",)


class InFlightLimitMiddleware:
    """Admit at most ``max_in_flight`` HTTP requests at once; 503 the rest. A request
    counts until its response body has been sent (a slow download holds its place)."""

    def __init__(self, app: ASGIApp, *, max_in_flight: int) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "") in UNBOUNDED_PATHS:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            refusal = problem_response(
                503, "overloaded", f"this server is answering {self.in_flight} requests; retry in {RETRY_AFTER_SECONDS} s",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )  # fmt: skip
            await refusal(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


def size_thread_pool(max_in_flight: int) -> None:
    """One default-pool thread per admitted request (see the module docstring)."""
    limiter = anyio.to_thread.current_default_thread_limiter()
    limiter.total_tokens = max(limiter.total_tokens, max_in_flight + THREAD_HEADROOM)


def install_backpressure(app: FastAPI) -> None:
    """Answer a database pool that stayed exhausted past its timeout with 503."""

    @app.exception_handler(PoolTimeoutError)
    async def _pool_timeout(request: Request, exc: PoolTimeoutError) -> JSONResponse:
        return problem_response(
            503, "database_busy", "every database connection is busy; retry shortly",
            instance=request.url.path, headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )  # fmt: skip

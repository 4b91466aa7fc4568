"""RFC 9457 problem details: every error the API returns, with a stable ``code``.

Clients switch on ``code`` (also sent as ``X-Error-Code``, as Hugging Face clients
expect); ``title`` and ``detail`` are for people and may change.
"""

from __future__ import annotations

import errno
import logging
from http import HTTPStatus
from typing import Any

import psycopg

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from nirvana.lottery.errors import LotteryError, TaskUnavailableError

PROBLEM_JSON = "application/problem+json"
#: Seconds a client should wait before retrying after a 503 for the database.
RETRY_AFTER_SECONDS = 2

log = logging.getLogger("api.errors")


class ProblemError(Exception):
    """An error the API answers with a problem document."""

    def __init__(self, status: int, code: str, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers or {}


def problem_response(
    status: int, code: str, detail: str, *, instance: str | None = None, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"https://nirvana.dev/problems/{code.replace('_', '-')}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if instance:
        body["instance"] = instance
    body.update(extra)
    return JSONResponse(
        body, status_code=status, media_type=PROBLEM_JSON, headers={"X-Error-Code": code, **(headers or {})}
    )


#: The status of a core error, by its class or nearest listed base; any other is 422
#: (the request is well-formed but its content is refused).
LOTTERY_STATUS: dict[type[LotteryError], int] = {
    TaskUnavailableError: 409,  # known task, no data here (missing files or extra): not the request's fault
}


def lottery_status(exc: LotteryError) -> int:
    """The HTTP status the API answers ``exc`` with."""
    return next((LOTTERY_STATUS[c] for c in type(exc).__mro__ if c in LOTTERY_STATUS), 422)


_HTTP_CODES = {
    400: "invalid_body",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    401: "unauthorized",
}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> JSONResponse:
        return problem_response(exc.status, exc.code, exc.detail, instance=request.url.path, headers=exc.headers)

    @app.exception_handler(LotteryError)
    async def _lottery(request: Request, exc: LotteryError) -> JSONResponse:
        return problem_response(lottery_status(exc), exc.code, exc.detail, instance=request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
            for err in exc.errors()
        ]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(part) for part in first["loc"])
        return problem_response(
            422, "validation_error", f"{where}: {first['msg']}", instance=request.url.path, errors=errors
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        return problem_response(
            exc.status_code, code, str(exc.detail), instance=request.url.path, headers=dict(exc.headers or {})
        )


def _unavailable(request: Request) -> JSONResponse:
    return problem_response(
        503, "database_unavailable", "the database is not answering; try again shortly",
        instance=request.url.path, headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )  # fmt: skip


def _insufficient_storage(request: Request, where: str) -> JSONResponse:
    return problem_response(507, "insufficient_storage", f"the server's {where} is full", instance=request.url.path)


def _internal_error(request: Request) -> JSONResponse:
    # After an error we did not foresee the connection's state is not trusted: say
    # ``Connection: close`` rather than have the server drop the client's next request.
    return problem_response(
        500, "internal_error", "the server failed to answer this request", instance=request.url.path,
        headers={"Connection": "close"},
    )  # fmt: skip


def install_outage_handlers(app: FastAPI) -> None:
    """Outages answer as problems: the database unreachable, frozen, timed out or its
    pool exhausted is 503 ``database_unavailable`` with ``Retry-After``; a full disk
    (the blob store's or the database's) is 507 ``insufficient_storage``; anything else
    unforeseen is a 500 problem with ``Connection: close``."""

    @app.exception_handler(DBAPIError)
    async def _database(request: Request, exc: DBAPIError) -> JSONResponse:
        if isinstance(exc.orig, psycopg.errors.DiskFull):
            return _insufficient_storage(request, "database disk")
        if isinstance(exc.orig, (psycopg.OperationalError, psycopg.InterfaceError)) or exc.connection_invalidated:
            # Connection refused or lost, the server starting or shutting down, a
            # statement timeout, the liveness probe unanswered: all pass with time.
            log.warning("database unavailable: %s", exc.orig.__class__.__name__)
            return _unavailable(request)
        log.error("database error on %s", request.url.path, exc_info=exc)
        return _internal_error(request)

    @app.exception_handler(PoolTimeoutError)
    async def _pool(request: Request, exc: PoolTimeoutError) -> JSONResponse:
        return _unavailable(request)

    @app.exception_handler(OSError)
    async def _os(request: Request, exc: OSError) -> JSONResponse:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return _insufficient_storage(request, "blob storage")
        log.error("I/O error on %s", request.url.path, exc_info=exc)
        return _internal_error(request)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return _internal_error(request)

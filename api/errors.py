"""RFC 9457 problem details: every error the API returns, with a stable ``code``.

Clients switch on ``code`` (also sent as ``X-Error-Code``, as Hugging Face clients
expect); ``title`` and ``detail`` are for people and may change.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from nirvana.lottery.errors import LotteryError, TaskUnavailableError

PROBLEM_JSON = "application/problem+json"


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

"""The OpenAPI document tells the truth: every problem+json answer a route can give is
declared on it, query parameters are what a query string can carry, and the links
between operations are stated, so a client generator or Schemathesis can rely on it.

Routes declare the problems particular to them (``responses=problems(404, 409)``);
``install_openapi`` adds what any API request may be answered whatever its route
(``ANY_ROUTE``), documents FastAPI's 422 as the problem+json it is, and states the links.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict

from api.errors import PROBLEM_JSON

_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_DESCRIPTIONS = {
    400: "Bad request: a malformed body or cursor",
    401: "No token where one is needed, or a token that is malformed, unknown or revoked",
    403: "The token lacks the scope, or the caller the right, this needs",
    404: "No such resource",
    409: "Conflicts with the stored state",
    413: "The request body exceeds this server's limit",
    416: "The range cannot be served",
    422: "The request is well-formed but invalid",
    429: "Rate limited: wait Retry-After seconds",
    503: "Temporarily unavailable (overloaded, or the database is): retry after Retry-After seconds",
}
#: What any API request may be answered, whatever its route: a bad token (every route
#: checks one), a body over the limit, the rate limits, an outage.
ANY_ROUTE = (401, 413, 429, 503)


class Problem(BaseModel):
    """RFC 9457 problem details; clients switch on ``code``."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    code: str
    instance: str | None = None


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries declaring problem+json answers with these statuses."""
    return {status: _problem_response(status) for status in statuses}


def _problem_response(status: int) -> dict[str, Any]:
    return {"description": _DESCRIPTIONS[status], "content": {PROBLEM_JSON: {"schema": _PROBLEM_REF}}}


def install_openapi(app: FastAPI, *, prefix: str) -> None:
    """Make ``app.openapi()`` return the document completed as the module says."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            _complete(schema, prefix)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _complete(schema: dict[str, Any], prefix: str) -> None:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = Problem.model_json_schema()
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    for path, operations in schema.get("paths", {}).items():
        if not path.startswith(prefix):
            continue
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for status in ANY_ROUTE:
                responses.setdefault(str(status), _problem_response(status))
            if "422" in responses:
                responses["422"] = _problem_response(422)
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "query":
                    parameter["schema"] = _without_null(parameter["schema"])
    _link(schema, prefix)


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query string cannot say null (leaving the parameter out means None), so
    ``anyOf: [X, null]`` is just X."""
    options = schema.get("anyOf")
    if not options:
        return schema
    rest = [option for option in options if option.get("type") != "null"]
    if len(rest) != 1:
        return schema
    return {**{k: v for k, v in schema.items() if k != "anyOf"}, **rest[0]}


def _operation_id(schema: dict[str, Any], path: str, method: str) -> str | None:
    operation = schema["paths"].get(path, {}).get(method)
    return operation.get("operationId") if operation else None


def _link(schema: dict[str, Any], prefix: str) -> None:
    """State how one operation's answer feeds the next: a stored ticket's id into its
    reads, downloads and transfers; a queued verification's id into its read and cancel."""
    ticket = {"ref": "$response.body#/id"}
    verification = {"verification_id": "$response.body#/id"}
    follow = {
        ("/tickets", "post", ("201", "200")): [
            ("GetTicket", "/tickets/{ref}", "get", ticket),
            ("GetMask", "/tickets/{ref}/mask", "get", ticket),
            ("GetInit", "/tickets/{ref}/init", "get", ticket),
            ("QueueTransfer", "/tickets/{ref}/verifications", "post", ticket),
        ],
        ("/tickets/{ref}/verifications", "post", ("202",)): [
            ("GetVerification", "/verifications/{verification_id}", "get", verification),
            ("CancelVerification", "/verifications/{verification_id}/cancel", "post", verification),
        ],
    }
    for (path, method, statuses), targets in follow.items():
        operation = schema["paths"].get(prefix + path, {}).get(method)
        if operation is None:
            continue
        links = {}
        for name, target, target_method, parameters in targets:
            operation_id = _operation_id(schema, prefix + target, target_method)
            if operation_id is not None:
                links[name] = {"operationId": operation_id, "parameters": parameters}
        for status in statuses:
            if status in operation["responses"]:
                operation["responses"][status]["links"] = links

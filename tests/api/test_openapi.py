"""The OpenAPI document says what the server does: problem+json answers declared where
they are sent, what the server refuses refused by the schema, Allow on 405."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from db.repositories.tickets import SORTS
from nirvana.lottery.data.tasks import list_tasks

PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}


@pytest.fixture
def schema(client: TestClient) -> dict[str, Any]:
    document: dict[str, Any] = client.get("/openapi.json").json()
    return document


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, ops in schema["paths"].items() for method, op in ops.items()]


def test_every_api_operation_declares_the_problems_any_request_can_get(schema: dict[str, Any]) -> None:
    for path, method, operation in _operations(schema):
        for status in ("401", "413", "429", "503"):
            assert operation["responses"][status]["content"] == PROBLEM, (method, path, status)
        if "422" in operation["responses"]:
            assert operation["responses"]["422"]["content"] == PROBLEM, (method, path)
    assert "HTTPValidationError" not in schema["components"]["schemas"]


@pytest.mark.parametrize(
    "method, path, statuses",
    [
        ("get", "/api/v1/tickets", {"400", "422"}),
        ("post", "/api/v1/tickets", {"400", "403", "422"}),
        ("get", "/api/v1/tickets/{ref}", {"404", "409", "422"}),
        ("get", "/api/v1/tickets/{ref}/mask", {"404", "409", "416", "422"}),
        ("get", "/api/v1/verifications/{verification_id}", {"404", "422"}),
        ("post", "/api/v1/verifications/{verification_id}/cancel", {"403", "404", "422"}),
        ("post", "/api/v1/tickets/{ref}/verifications", {"400", "403", "404", "409", "422"}),
        ("get", "/api/v1/architectures/{name}", {"404", "422"}),
    ],
)
def test_route_specific_problems_are_declared(schema: dict[str, Any], method: str, path: str, statuses: set[str]) -> None:
    responses = schema["paths"][path][method]["responses"]
    assert statuses <= set(responses)
    assert all(responses[status]["content"] == PROBLEM for status in statuses)


def test_the_schema_refuses_what_the_server_refuses(schema: dict[str, Any], client: TestClient) -> None:
    params = {p["name"]: p["schema"] for p in schema["paths"]["/api/v1/tickets"]["get"]["parameters"]}
    assert params["task"]["enum"] == [t.name for t in list_tasks()] and params["task"]["minLength"] == 1
    assert params["tag"]["minLength"] == 1
    assert params["sort"]["enum"] == list(SORTS)
    assert "anyOf" not in params["min_sparsity"]  # a query string cannot carry null
    ref = schema["paths"]["/api/v1/tickets/{ref}"]["get"]["parameters"][0]["schema"]
    pattern = re.compile(ref["pattern"])
    assert pattern.match("a" * 12) and pattern.match("A" * 64) and not pattern.match("a" * 11) and not pattern.match("g" * 12)
    assert client.get("/api/v1/tickets/" + "g" * 12).status_code == 422
    assert client.get("/api/v1/tickets", params={"task": ""}).status_code == 422
    assert client.get("/api/v1/tickets", params={"sort": ""}).status_code == 422
    task = schema["paths"]["/api/v1/architectures/{name}"]["get"]["parameters"][1]["schema"]
    assert "digits" in task["enum"]
    transfer = schema["components"]["schemas"]["TransferCreate"]["properties"]["task"]
    assert transfer["minLength"] == 1


def test_an_unknown_architecture_or_task_is_404(client: TestClient) -> None:
    assert client.get("/api/v1/architectures/nonsense", params={"task": "digits"}).json()["code"] == "unknown_architecture"
    assert client.get("/api/v1/architectures/nonsense", params={"task": "digits"}).status_code == 404
    assert client.get("/api/v1/architectures/lenet_32_16", params={"task": "nope"}).status_code == 404


def test_uploads_link_to_their_reads(schema: dict[str, Any]) -> None:
    links = schema["paths"]["/api/v1/tickets"]["post"]["responses"]["201"]["links"]
    assert links["GetTicket"]["parameters"] == {"ref": "$response.body#/id"}
    transfer = schema["paths"]["/api/v1/tickets/{ref}/verifications"]["post"]["responses"]["202"]["links"]
    assert transfer["GetVerification"]["parameters"] == {"verification_id": "$response.body#/id"}


@pytest.mark.parametrize(
    "method, path, allowed",
    [("delete", "/api/v1/tickets", "GET, POST"), ("put", "/api/v1/tickets/" + "a" * 64 + "/mask", "GET, HEAD")],
)
def test_405_allows_every_method_of_the_path(client: TestClient, method: str, path: str, allowed: str) -> None:
    answer = client.request(method.upper(), path)
    assert answer.status_code == 405 and answer.headers["allow"] == allowed
    assert answer.headers["content-type"] == "application/problem+json"

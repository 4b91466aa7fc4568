"""/metrics in Prometheus' text format, request ids, JSON log lines."""

from __future__ import annotations

import json
import logging

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from service.logs import JsonFormatter
from tests.support.tickets import make_ticket


def _families(client: TestClient) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {
        family.name: [(s.name, s.labels, s.value) for s in family.samples]
        for family in text_string_to_metric_families(response.text)
    }


def test_metrics_parse_and_count_requests_by_route_and_status(client: TestClient, auth: dict[str, str]) -> None:
    ticket = client.post("/api/v1/tickets", files=make_ticket().multipart(), headers=auth).json()
    client.get(f"/api/v1/tickets/{ticket['id']}")
    client.get(f"/api/v1/tickets/{'0' * 64}")
    families = _families(client)

    requests = {(s[1]["route"], s[1]["method"], s[1]["status"]): s[2] for s in families["nirvana_http_requests"]
                if s[0] == "nirvana_http_requests_total"}  # fmt: skip
    assert requests[("/api/v1/tickets", "POST", "201")] == 1
    # One label per route template, not per ticket.
    assert requests[("/api/v1/tickets/{ref}", "GET", "200")] == 1
    assert requests[("/api/v1/tickets/{ref}", "GET", "404")] == 1
    latency = families["nirvana_http_request_duration_seconds"]
    [count] = [s[2] for s in latency if s[0].endswith("_count") and s[1]["route"] == "/api/v1/tickets/{ref}"]
    assert count == 2
    assert families["nirvana_http_requests_in_flight"][0][2] == 1  # the scrape itself
    queue = {s[1]["state"]: s[2] for s in families["nirvana_verifications"]}
    assert queue["queued"] == 1 and queue["succeeded"] == 0
    pool = {s[1]["state"]: s[2] for s in families["nirvana_db_pool_connections"]}
    assert set(pool) == {"checked_out", "idle", "size"} and pool["size"] >= 1
    durations = {s[0]: s[2] for s in families["nirvana_verification_duration_seconds"] if "le" not in s[1]}
    assert durations["nirvana_verification_duration_seconds_count"] == 0


def test_every_response_carries_a_request_id(client: TestClient) -> None:
    generated = client.get("/api/v1/tasks").headers["x-request-id"]
    assert len(generated) == 32 and int(generated, 16) >= 0
    assert client.get("/api/v1/tasks").headers["x-request-id"] != generated
    assert client.get("/api/v1/tasks", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == "abc-123"
    # Something unfit for a log line is replaced, not echoed.
    assert client.get("/api/v1/tasks", headers={"X-Request-ID": "a b\tc"}).headers["x-request-id"] != "a b\tc"
    assert client.get("/nowhere").headers["x-request-id"]


def test_log_lines_are_json_with_the_extras() -> None:
    record = logging.LogRecord("nirvana.access", logging.INFO, __file__, 1, "request", None, None)
    record.request_id, record.status = "abc", 200
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "request" and line["level"] == "info" and line["logger"] == "nirvana.access"
    assert line["request_id"] == "abc" and line["status"] == 200 and line["time"].endswith("+00:00")

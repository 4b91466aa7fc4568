"""What an operator watches: ``/metrics`` in Prometheus' text format, a request id on
every response (``X-Request-ID``), and one log line per request on the
``nirvana.access`` logger, its fields as extras (JSON lines under ``nirvana serve`` and
``nirvana api``: ``service.logs``).

The registry belongs to the app (one per process): several API processes behind one
port are scraped one at a time, so give each its own scrape target or sum over them.
Request metrics are counted as requests end; the database's figures (pool, queue depth
by state, verification durations) are read when ``/metrics`` is scraped.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine
from sqlalchemy.pool import QueuePool
from sqlalchemy.orm import Session
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import SessionDep
from nirvana.states import VerificationState
from db.repositories.verifications import DurationHistogram, count_by_state, duration_histogram

access_log = logging.getLogger("nirvana.access")

REQUEST_ID_HEADER = "x-request-id"
# A caller's own id is kept if it is short and plain, so it can go into logs as is.
_CALLER_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
VERIFICATION_BUCKETS = (10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 4 * 3600.0, 12 * 3600.0)


class _DatabaseFigures(Collector):
    """The pool's, the queue's and the verifications' figures as last read."""

    def __init__(self) -> None:
        self.pool: dict[str, int] = {}
        self.states: dict[str, int] = {}
        self.durations = DurationHistogram([0] * len(VERIFICATION_BUCKETS), 0, 0.0)

    def collect(self) -> list[Metric]:
        pool = GaugeMetricFamily("nirvana_db_pool_connections", "Database connections of this process", labels=["state"])
        for state, count in self.pool.items():
            pool.add_metric([state], count)
        queue = GaugeMetricFamily("nirvana_verifications", "Verifications by state (queued: the queue's depth)", labels=["state"])
        for state in VerificationState:
            queue.add_metric([state.value], self.states.get(state.value, 0))
        buckets = [(str(bound), count) for bound, count in zip(VERIFICATION_BUCKETS, self.durations.at_most, strict=True)]
        durations = HistogramMetricFamily(
            "nirvana_verification_duration_seconds", "Run time of finished verifications",
            buckets=[*buckets, ("+Inf", self.durations.count)], sum_value=self.durations.total_seconds,
        )  # fmt: skip
        return [pool, queue, durations]

    def refresh(self, session: Session, engine: Engine) -> None:
        pool = engine.pool
        if isinstance(pool, QueuePool):
            self.pool = {"checked_out": pool.checkedout(), "idle": pool.checkedin(), "size": pool.size()}
        self.states = count_by_state(session)
        self.durations = duration_histogram(session, VERIFICATION_BUCKETS)


class Metrics:
    """The app's registry and the metrics the middleware and ``/metrics`` update."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "nirvana_http_requests", "HTTP requests answered", ["route", "method", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "nirvana_http_request_duration_seconds", "Time from request to the end of the response",
            ["route", "method"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.in_flight = Gauge("nirvana_http_requests_in_flight", "Requests being answered", registry=self.registry)
        self.database = _DatabaseFigures()
        self.registry.register(self.database)


class ObservabilityMiddleware:
    """Times, counts and logs every HTTP request, and gives it a request id: the
    caller's ``X-Request-ID`` when plain enough, else a new one; echoed on the response."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(REQUEST_ID_HEADER.encode(), b"").decode("latin-1")
        request_id = given if _CALLER_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", request_id.encode())]}
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self.metrics.in_flight.dec()
            elapsed = time.perf_counter() - started
            route = _route_of(scope)
            self.metrics.requests.labels(route, scope["method"], str(status)).inc()
            self.metrics.latency.labels(route, scope["method"]).observe(elapsed)
            access_log.info(
                "request",
                extra={"request_id": request_id, "method": scope["method"], "path": scope["path"], "route": route,
                       "status": status, "duration_ms": round(elapsed * 1000, 2)},
            )  # fmt: skip


def _route_of(scope: Scope) -> str:
    """The route's template (``/api/v1/tickets/{ref}``), never the raw path: one label
    value per route, however many tickets there are."""
    path: str = scope.get("path", "")
    route = scope.get("route")
    template, pattern = getattr(route, "path", None), getattr(route, "path_regex", None)
    if isinstance(template, str) and isinstance(pattern, re.Pattern):
        # An included router's route knows its path without the prefix it was included
        # under: the prefix is the part of the path before what the route matches.
        for cut in (0, *(i for i, char in enumerate(path) if char == "/" and i > 0)):
            if pattern.match(path[cut:]):
                return path[:cut] + template
    return "/static" if path.startswith("/static/") else "unmatched"


router = APIRouter(tags=["health"])


@router.get("/metrics", response_class=Response, include_in_schema=False)
def metrics(request: Request, session: SessionDep) -> Response:
    """This process's metrics in Prometheus' text format: requests by route and status,
    latency histograms, requests in flight, the database pool, verifications by state
    (the queue's depth) and verification run times."""
    figures: Metrics = request.app.state.metrics
    figures.database.refresh(session, request.app.state.engine)
    return Response(generate_latest(figures.registry), media_type=CONTENT_TYPE_LATEST)

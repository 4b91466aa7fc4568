"""Rate limits, as the hubs do them: a token bucket per client (``api.callers`` says
who that is) and per bucket (``api``, and ``downloads`` for mask and init files), 429
with ``Retry-After`` when empty, and the IETF ``RateLimit`` / ``RateLimit-Policy``
headers on every limited response so clients can pace themselves.

The buckets live in the API process: with several API processes each enforces its own
share. Clients are kept in an LRU of bounded size, so many addresses cannot grow it
without bound.
"""

from __future__ import annotations

import math
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import problem_response

_DOWNLOAD = re.compile(r"^/api/v1/tickets/[^/]+/(mask|init)$")
MAX_CLIENTS = 10_000


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """``per_minute`` requests a minute per key, in bursts of up to ``per_minute``."""

    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.clock = clock
        self.buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, key: str) -> tuple[bool, int, float]:
        """(allowed, requests remaining, seconds until one more is allowed)."""
        now = self.clock()
        bucket = self.buckets.pop(key, None) or _Bucket(self.capacity, now)
        bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        allowed = bucket.tokens >= 1.0
        if allowed:
            bucket.tokens -= 1.0
        self.buckets[key] = bucket
        if len(self.buckets) > MAX_CLIENTS:
            self.buckets.popitem(last=False)
        wait = 0.0 if bucket.tokens >= 1.0 else (1.0 - bucket.tokens) / self.rate
        return allowed, int(bucket.tokens), wait


class RateLimitMiddleware:
    def __init__(
        self, app: ASGIApp, *, api_per_minute: int, downloads_per_minute: int, identify: Callable[[Scope], str]
    ) -> None:
        self.app = app
        self.identify = identify  # the caller's key: api.callers.CallerIdentity.key
        self.limits = {
            name: TokenBuckets(per_minute)
            for name, per_minute in (("api", api_per_minute), ("downloads", downloads_per_minute))
            if per_minute > 0
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/api/v1/"):
            await self.app(scope, receive, send)
            return
        name = "downloads" if _DOWNLOAD.match(path) else "api"
        buckets = self.limits.get(name)
        if buckets is None:
            await self.app(scope, receive, send)
            return
        allowed, remaining, wait = buckets.take(self.identify(scope))
        window = 60
        headers = [
            (b"ratelimit-policy", f'"{name}";q={int(buckets.capacity)};w={window}'.encode()),
            (b"ratelimit", f'"{name}";r={remaining};t={math.ceil(wait)}'.encode()),
        ]
        if not allowed:
            retry_after = math.ceil(wait)
            refusal = problem_response(
                429,
                "rate_limited",
                f"too many {name} requests; retry in {retry_after} s",
                headers={"Retry-After": str(retry_after), **{k.decode(): v.decode() for k, v in headers}},
            )
            await refusal(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *headers]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


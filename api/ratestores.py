"""Token buckets shared by every API process: in PostgreSQL (the database the API
already has) or in Redis (``NIRVANA_REDIS_URL``). Both take a token in one atomic
round trip and use the server's clock, so processes on several machines agree.

Every take costs that round trip; a store that cannot be reached lets the request
through (and logs it), so limits never turn a store outage into an API outage.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from typing import Any

import psycopg

from api.ratelimit import BucketStore, MemoryStore
from api.settings import ApiSettings

log = logging.getLogger(__name__)

ALLOW = (True, 0, 0.0)

# Refill and take in one statement. A bucket that cannot give a token is not updated,
# so no row comes back: the request is refused.
_TAKE = """
INSERT INTO rate_limit_buckets AS b (key, tokens, updated_at)
VALUES (%(key)s, %(capacity)s - 1, clock_timestamp())
ON CONFLICT (key) DO UPDATE
SET tokens = LEAST(%(capacity)s, b.tokens + EXTRACT(EPOCH FROM clock_timestamp() - b.updated_at) * %(rate)s) - 1,
    updated_at = clock_timestamp()
WHERE LEAST(%(capacity)s, b.tokens + EXTRACT(EPOCH FROM clock_timestamp() - b.updated_at) * %(rate)s) >= 1
RETURNING tokens
"""
_LEVEL = """
SELECT LEAST(%(capacity)s, tokens + EXTRACT(EPOCH FROM clock_timestamp() - updated_at) * %(rate)s)
FROM rate_limit_buckets WHERE key = %(key)s
"""
# A bucket untouched for longer than a full refill is full: its row can go.
_FORGET = "DELETE FROM rate_limit_buckets WHERE updated_at < clock_timestamp() - interval '1 minute' * %(minutes)s"
FORGET_EVERY = 1000


def _answer(tokens: float, rate: float, allowed: bool) -> tuple[bool, int, float]:
    return allowed, max(0, math.floor(tokens)), 0.0 if tokens >= 1 else (1 - tokens) / rate


class PostgresStore:
    """Buckets in the UNLOGGED table ``rate_limit_buckets``, on one autocommit
    connection per process (opened on first use, reopened after an error)."""

    def __init__(self, database_url: str, prefix: str) -> None:
        self.conninfo = database_url.replace("postgresql+psycopg://", "postgresql://")
        self.prefix = prefix
        self.connection: psycopg.AsyncConnection[Any] | None = None
        self.lock = asyncio.Lock()

    async def take(self, key: str, per_minute: int) -> tuple[bool, int, float]:
        rate = per_minute / 60.0
        params = {"key": f"{self.prefix}:{key}", "capacity": float(per_minute), "rate": rate}
        try:
            async with self.lock:
                connection = await self._connection()
                row = await (await connection.execute(_TAKE, params)).fetchone()
                if row is not None:
                    return _answer(row[0], rate, True)
                level = await (await connection.execute(_LEVEL, params)).fetchone()
                if random.randrange(FORGET_EVERY) == 0:
                    await connection.execute(_FORGET, {"minutes": 2})
        except psycopg.Error as exc:
            log.warning("rate limits: PostgreSQL unavailable (%s); letting the request through", exc)
            await self.close()
            return ALLOW
        return _answer(level[0] if level else 0.0, rate, False)

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        if self.connection is None or self.connection.closed:
            self.connection = await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True, connect_timeout=5)
        return self.connection

    async def close(self) -> None:
        if self.connection is not None:
            connection, self.connection = self.connection, None
            await connection.close()


# KEYS[1]: the bucket; ARGV: capacity, refill per second. Returns {allowed, tokens}.
_REDIS_TAKE = """
local capacity, rate = tonumber(ARGV[1]), tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate)
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate) + 1)
return {allowed, tostring(tokens)}
"""


class RedisStore:
    """Buckets as Redis hashes, updated by one Lua script (atomic, on Redis's clock),
    expiring once they would be full again."""

    def __init__(self, url: str, prefix: str) -> None:
        import redis.asyncio

        self.client = redis.asyncio.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self.script = self.client.register_script(_REDIS_TAKE)
        self.prefix = prefix

    async def take(self, key: str, per_minute: int) -> tuple[bool, int, float]:
        import redis

        rate = per_minute / 60.0
        try:
            allowed, tokens = await self.script(keys=[f"{self.prefix}:ratelimit:{key}"], args=[per_minute, rate])
        except redis.RedisError as exc:
            log.warning("rate limits: Redis unavailable (%s); letting the request through", exc)
            return ALLOW
        return _answer(float(tokens), rate, bool(allowed))

    async def close(self) -> None:
        await self.client.aclose()


def make_store(settings: ApiSettings) -> BucketStore:
    """Redis when ``redis_url`` is set, else the store ``rate_limit_store`` names."""
    if settings.redis_url:
        return RedisStore(settings.redis_url, settings.rate_limit_prefix)
    if settings.rate_limit_store == "postgres":
        return PostgresStore(settings.database_url, settings.rate_limit_prefix)
    if settings.rate_limit_store == "redis":
        raise ValueError("NIRVANA_RATE_LIMIT_STORE=redis needs NIRVANA_REDIS_URL")
    return MemoryStore()

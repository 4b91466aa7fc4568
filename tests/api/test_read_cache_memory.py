"""``api.readcache`` in memory: what is kept, for how long, and how many requests one
database query answers. (The cache against a real server and database:
tests/e2e/test_read_cache.py.)"""

from __future__ import annotations

import asyncio

import httpx
from starlette.types import Receive, Scope, Send

from api.readcache import ReadCache, ReadCacheMiddleware, _Answer


def _answer(cache: ReadCache, body: bytes) -> _Answer:
    return _Answer(cache.generation, 200, [(b"content-type", b"application/json")], body)


def _listening(max_bytes: int) -> ReadCache:
    cache = ReadCache(max_bytes)
    cache.listening = True
    return cache


KEY = ("GET", "/api/v1/tickets", b"", b"h")


def test_an_answer_is_kept_until_anything_changes() -> None:
    cache = _listening(1000)
    cache.put(KEY, _answer(cache, b"x" * 10))
    assert cache.get(KEY) is not None
    cache.forget()
    assert cache.get(KEY) is None and len(cache) == 0


def test_an_answer_computed_before_a_change_is_not_kept() -> None:
    cache = _listening(1000)
    stale = _answer(cache, b"old")
    cache.forget()
    cache.put(KEY, stale)
    assert cache.get(KEY) is None


def test_nothing_is_kept_or_served_while_changes_are_not_heard() -> None:
    cache = _listening(1000)
    cache.put(KEY, _answer(cache, b"x"))
    cache.listening = False
    assert cache.get(KEY) is None
    cache.put(KEY, _answer(cache, b"x"))
    assert len(cache) == 0


def test_the_budget_evicts_the_least_recently_used_and_refuses_the_huge() -> None:
    cache = _listening(800)
    keys = [("GET", f"/api/v1/tickets/{i}", b"", b"h") for i in range(9)]
    for key in keys:
        cache.put(key, _answer(cache, b"x" * 100))
        cache.get(keys[0])  # keep the first one recently used
    assert cache.get(keys[0]) is not None and cache.get(keys[1]) is None
    assert sum(len(a.body) for a in cache._entries.values()) <= 800
    cache.put(("GET", "/api/v1/big", b"", b"h"), _answer(cache, b"x" * 101))  # over an eighth
    assert cache.get(("GET", "/api/v1/big", b"", b"h")) is None


class CountingApp:
    """A slow downstream app that counts how often it is asked."""

    def __init__(self, cache: ReadCache | None = None, status: int = 200) -> None:
        self.calls = 0
        self.status = status
        self.cache = cache

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls += 1
        await asyncio.sleep(0.05)
        if self.cache is not None:
            self.cache.forget()  # a change lands while this answer is computed
        body = f'{{"call": {self.calls}}}'.encode()
        await send({"type": "http.response.start", "status": self.status, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})


async def _many(app: ReadCacheMiddleware, count: int, path: str = "/api/v1/tickets") -> list[httpx.Response]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        return await asyncio.gather(*(client.get(path) for _ in range(count)))


def test_simultaneous_identical_reads_ask_the_app_once() -> None:
    inner = CountingApp()
    answers = asyncio.run(_many(ReadCacheMiddleware(inner, cache=_listening(10_000)), 20))
    assert inner.calls == 1
    assert {a.content for a in answers} == {b'{"call": 1}'}
    assert sorted(a.headers["x-cache"] for a in answers) == ["hit"] * 19 + ["miss"]


def test_failed_reads_are_neither_kept_nor_shared() -> None:
    inner = CountingApp(status=503)
    answers = asyncio.run(_many(ReadCacheMiddleware(inner, cache=_listening(10_000)), 5))
    assert inner.calls == 5 and all(a.status_code == 503 for a in answers)


def test_an_answer_overtaken_by_a_change_is_not_served_again() -> None:
    cache = _listening(10_000)
    inner = CountingApp(cache)
    app = ReadCacheMiddleware(inner, cache=cache)
    asyncio.run(_many(app, 1))
    asyncio.run(_many(app, 1))
    assert inner.calls == 2


def test_writes_forget_before_their_answer_starts() -> None:
    cache = _listening(10_000)
    app = ReadCacheMiddleware(CountingApp(), cache=cache)
    asyncio.run(_many(app, 1))
    before = cache.generation

    async def post() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            return await client.post("/api/v1/tickets")

    asyncio.run(post())
    assert cache.generation > before

"""Answers to public reads, kept in memory until the database changes.

A public database is read far more than it is written, and most reads are the same few
pages (a task's list, a popular ticket). An anonymous ``GET`` or ``HEAD`` of the JSON
API is answered from memory when the same request (method, path, query, ``Host``) was
answered 200 since the last change, without a route, a session or a query.

What counts as a change:
- a notification on ``nirvana_changes``, which the database sends at the commit of
  every write public reads can show (migration ``9e4d2c7b1a30``: tickets,
  verifications' visible columns, users' names), whoever wrote it: another API
  process, a worker, an operator in ``psql``. ``ChangeListener`` hears it on a
  connection of its own and forgets every answer;
- every write this process answers itself, forgotten before its response starts, so
  a client that got 201 reads what it wrote even before the notification arrives.

An answer computed while a change arrived is never kept (it may predate the change).
While the listener is not connected (at startup, after losing its connection), or the
database monitor finds the server unreachable (``db.liveness``: reads then answer 503
as without a cache), nothing is served from memory. Not cached: requests with
``Authorization`` or a cookie (a token must still be checked, and its answers are its
own), conditional and range requests, downloads, ``/health``, ``/tasks``, errors.

Bounded by bytes (``NIRVANA_READ_CACHE_MB``; 0 turns it off), least recently used
first out. Answers say ``X-Cache: hit`` or ``miss``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

import psycopg
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import SAFE_METHODS
from db.notifications import CHANGES_CHANNEL, ChannelListener

log = logging.getLogger("nirvana.readcache")

# Not /health (it is the database's check), not downloads (their own path needs no
# database), not /tasks (its counts have a clock of their own, api.tickets.TicketCounts).
_CACHEABLE = re.compile(r"^/api/v1/(?!health$|tasks$)(?!tickets/[^/]+/(?:mask|init)$)")
_BYPASS_HEADERS = frozenset({b"authorization", b"cookie", b"if-none-match", b"if-modified-since", b"range"})
# Answers kept for these; OPTIONS, though safe too, is answered by the route each time.
_CACHED_METHODS = frozenset({"GET", "HEAD"})
# One answer at most this share of the budget: a huge page is computed every time.
_LARGEST_SHARE = 8
RECONNECT_SECONDS = 1.0

_Key: TypeAlias = tuple[str, str, bytes, bytes]


@dataclass(frozen=True, slots=True)
class _Answer:
    generation: int
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    #: The route that computed it, put back on the scope of every request it answers,
    #: so the metrics and logs name the route, not "unmatched".
    route: object = None


class ReadCache:
    """Answers by request, valid while ``generation`` is the one they were computed at.

    ``forget`` may be called from any thread: it only moves ``generation`` on; the
    entries themselves are touched on the event loop alone, which drops stale ones as
    it meets them."""

    def __init__(self, max_bytes: int, *, database_reachable: Callable[[], bool] = lambda: True) -> None:
        self.max_bytes = max_bytes
        self._generations = itertools.count(1)
        self.generation = 0
        #: Whether changes are being heard; nothing is served or kept while not.
        self.listening = False
        self.database_reachable = database_reachable
        self._entries: OrderedDict[_Key, _Answer] = OrderedDict()
        self._bytes = 0
        self._cleared_at = 0

    def forget(self) -> None:
        """Every answer held so far is stale."""
        # next() on a count is one atomic step under the GIL, ``+= 1`` is not: two
        # threads forgetting at once still move the generation on twice.
        self.generation = next(self._generations)

    @property
    def serving(self) -> bool:
        """Whether answers may be served and kept now."""
        return self.listening and self.database_reachable()

    def get(self, key: _Key) -> _Answer | None:
        answer = self._entries.get(key)
        if answer is None:
            return None
        if answer.generation != self.generation or not self.serving:
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return answer

    def put(self, key: _Key, answer: _Answer) -> None:
        """Keep ``answer`` if it is still current and small enough."""
        if answer.generation != self.generation or not self.serving:
            return
        size = len(answer.body)
        if size * _LARGEST_SHARE > self.max_bytes:
            return
        if self._cleared_at != self.generation:
            # Everything held is stale: free it at once rather than one entry at a time.
            self._entries.clear()
            self._bytes = 0
            self._cleared_at = self.generation
        self._drop(key)
        self._entries[key] = answer
        self._bytes += size
        while self._bytes > self.max_bytes:
            _, oldest = self._entries.popitem(last=False)
            self._bytes -= len(oldest.body)

    def _drop(self, key: _Key) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= len(old.body)

    def __len__(self) -> int:
        return len(self._entries)


class ChangeListener:
    """A thread that ``LISTEN``s on ``nirvana_changes`` and tells ``cache`` to forget
    on every notification. Losing the connection also forgets (a change may have been
    missed) and stops serving from memory until it is back."""

    def __init__(self, database_url: str, cache: ReadCache, *, poll_seconds: float = 0.5) -> None:
        self._url = database_url
        self._cache = cache
        self._poll = poll_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nirvana-read-cache", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with ChannelListener(self._url, CHANGES_CHANNEL, connect_timeout=5) as channel:
                    self._cache.forget()
                    self._cache.listening = True
                    while not self._stop.is_set():
                        if channel.wait(self._poll):  # every pending notification at once
                            self._cache.forget()
            except psycopg.Error as exc:
                log.warning("read cache: not listening for changes (%s); serving without it", exc)
            finally:
                self._cache.listening = False
                self._cache.forget()
            self._stop.wait(RECONNECT_SECONDS)


class ReadCacheMiddleware:
    """Serves anonymous public reads from ``cache`` (see the module docstring) and
    makes every write answered here forget it before the write's response starts."""

    def __init__(self, app: ASGIApp, *, cache: ReadCache) -> None:
        self.app = app
        self.cache = cache
        self._computing: dict[_Key, tuple[int, asyncio.Future[_Answer | None]]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        if method not in SAFE_METHODS:
            await self.app(scope, receive, self._forgetting(send))
            return
        key = self._key(scope) if method in _CACHED_METHODS else None
        if key is None:
            await self.app(scope, receive, send)
            return
        answer = self.cache.get(key)
        pending = self._computing.get(key)
        if answer is None and pending is not None and pending[0] == self.cache.generation:
            # The same request is being answered since the last change: wait for that
            # answer rather than ask the database again (after a change, all ask at once).
            answer = await asyncio.shield(pending[1])
        if answer is not None:
            scope["route"] = answer.route
            await send({"type": "http.response.start", "status": answer.status,
                        "headers": [*answer.headers, (b"x-cache", b"hit")]})  # fmt: skip
            await send({"type": "http.response.body", "body": answer.body})
            return
        computed: asyncio.Future[_Answer | None] = asyncio.get_running_loop().create_future()
        entry = (self.cache.generation, computed)
        self._computing[key] = entry
        try:
            await self.app(scope, receive, self._keeping(key, scope, send, computed))
        finally:
            if self._computing.get(key) is entry:
                del self._computing[key]
            if not computed.done():
                computed.set_result(None)  # an error, or not a 200: the waiters ask themselves

    def _key(self, scope: Scope) -> _Key | None:
        if not self.cache.serving or not _CACHEABLE.match(scope["path"]):
            return None
        host = b""
        for name, value in scope["headers"]:
            if name in _BYPASS_HEADERS:
                return None
            if name == b"host":
                host = value
        return scope["method"], scope["path"], scope["query_string"], host

    def _forgetting(self, send: Send) -> Send:
        async def forget_then_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.cache.forget()
            await send(message)

        return forget_then_send

    def _keeping(self, key: _Key, scope: Scope, send: Send, computed: asyncio.Future[_Answer | None]) -> Send:
        """``send``, keeping a 200 answer in the cache and handing it to ``computed``'s
        waiters (who asked before any later change, so it is as fresh as they need)."""
        generation = self.cache.generation
        started: dict[str, object] = {}
        chunks: list[bytes] = []

        async def keep_and_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                started.update(message)
                message = {**message, "headers": [*message.get("headers", []), (b"x-cache", b"miss")]}
            elif message["type"] == "http.response.body" and started.get("status") == 200:
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    headers = list(started.get("headers", []))  # type: ignore[call-overload]
                    answer = _Answer(generation, 200, headers, b"".join(chunks), scope.get("route"))
                    self.cache.put(key, answer)
                    if not computed.done():
                        computed.set_result(answer)
            await send(message)

        return keep_and_send

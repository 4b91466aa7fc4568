"""Dependencies routes declare with ``Annotated``: the session, storage, settings and
the caller's token."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

import anyio.to_thread
from fastapi import Depends, Request
from sqlalchemy.orm import Session

from api.callers import CallerIdentity, bearer_secret
from api.errors import ProblemError
from api.settings import ApiSettings
from db.blobs import BlobStorage
from db.models.users import ApiToken
from db.tokens import authenticate

# Reads: no BEGIN and no COMMIT, each statement on its own (one round trip a query).
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def get_session(request: Request) -> AsyncIterator[Session]:
    """One unit of work per request, ended before the response is sent
    (``scope="function"`` below), so a client that got 201 can read what it wrote.

    GET and HEAD run on autocommit connections: no transaction to begin or end, and
    giving the connection back sends nothing, so it happens here on the event loop.
    They must not write. Other methods run in one transaction, committed when the route
    returns and rolled back when it raises, in a worker thread. The session is made
    here, not in a thread: making one does no I/O."""
    state = request.app.state
    if request.method in SAFE_METHODS:
        with state.read_sessionmaker() as session:
            yield session
        return
    session = state.sessionmaker()
    try:
        yield session
        await anyio.to_thread.run_sync(_end, session, True)
    except BaseException:
        await anyio.to_thread.run_sync(_end, session, False)
        raise


def _end(session: Session, commit: bool) -> None:
    try:
        if commit:
            session.commit()
        else:
            session.rollback()
    finally:
        session.close()


def get_storage(request: Request) -> BlobStorage:
    return request.app.state.storage  # type: ignore[no-any-return]


def get_settings(request: Request) -> ApiSettings:
    return request.app.state.settings  # type: ignore[no-any-return]


SessionDep = Annotated[Session, Depends(get_session, scope="function")]
StorageDep = Annotated[BlobStorage, Depends(get_storage)]
SettingsDep = Annotated[ApiSettings, Depends(get_settings)]

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="nirvana"'}


async def get_caller(request: Request, session: SessionDep) -> ApiToken | None:
    """The caller's token; None when the request sends no ``Authorization``. A header
    that is malformed or names an unknown or revoked token is 401 ``invalid_token`` on
    every route, reads included (the routers declare this dependency), so a made-up
    token is never a way around the rate limits. A token that authenticates is
    remembered, and the rate limits count its requests by token from then on.

    Async, so an anonymous request (most reads) costs no trip to a worker thread; a
    token is looked up in one."""
    header = request.headers.get("authorization")
    if not header:
        return None
    secret = bearer_secret(header)
    if secret is None:
        raise ProblemError(401, "invalid_token", "the Authorization header must be 'Bearer <token>'", headers=_CHALLENGE)
    # Reads write nothing, not even when a token was last used.
    record_use = request.method not in SAFE_METHODS
    token = await anyio.to_thread.run_sync(lambda: authenticate(session, secret, record_use=record_use))
    if token is None:
        raise ProblemError(401, "invalid_token", "the token is unknown or revoked", headers=_CHALLENGE)
    callers: CallerIdentity = request.app.state.callers
    callers.remember(secret)
    return token


CallerDep = Annotated[ApiToken | None, Depends(get_caller)]


def require_scope(scope: str, *alternatives: str) -> Callable[[ApiToken | None], Awaitable[ApiToken]]:
    """A dependency that returns the caller's token if it carries ``scope`` (or one of
    the ``alternatives``; the route then checks which one it needs). Async: it does no
    I/O, so it needs no worker thread."""

    async def dependency(caller: CallerDep) -> ApiToken:
        if caller is None:
            raise ProblemError(401, "unauthorized", "this request needs 'Authorization: Bearer <token>'", headers=_CHALLENGE)
        if not any(caller.allows(s) for s in (scope, *alternatives)):
            raise ProblemError(403, "insufficient_scope", f"the token lacks the '{scope}' scope")
        return caller

    return dependency


WriterDep = Annotated[ApiToken, Depends(require_scope("write"))]

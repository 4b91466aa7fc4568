"""Dependencies routes declare with ``Annotated``: the session, storage, settings and
the caller's token."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from api.callers import CallerIdentity, bearer_secret
from api.errors import ProblemError
from api.settings import ApiSettings
from db.blobs import BlobStorage
from db.models.users import ApiToken
from db.session import unit_of_work
from db.tokens import authenticate


def get_session(request: Request) -> Iterator[Session]:
    """One transaction per request: committed when the route returns, rolled back when
    it raises. ``scope="function"`` below makes the commit happen before the response
    is sent, so a client that got 201 can read what it wrote."""
    with unit_of_work(request.app.state.sessionmaker) as session:
        yield session


def get_storage(request: Request) -> BlobStorage:
    return request.app.state.storage  # type: ignore[no-any-return]


def get_settings(request: Request) -> ApiSettings:
    return request.app.state.settings  # type: ignore[no-any-return]


SessionDep = Annotated[Session, Depends(get_session, scope="function")]
StorageDep = Annotated[BlobStorage, Depends(get_storage)]
SettingsDep = Annotated[ApiSettings, Depends(get_settings)]

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="nirvana"'}


def get_caller(request: Request, session: SessionDep) -> ApiToken | None:
    """The caller's token; None when the request sends no ``Authorization``. A header
    that is malformed or names an unknown or revoked token is 401 ``invalid_token`` on
    every route, reads included (the routers declare this dependency), so a made-up
    token is never a way around the rate limits. A token that authenticates is
    remembered, and the rate limits count its requests by token from then on."""
    header = request.headers.get("authorization")
    if not header:
        return None
    secret = bearer_secret(header)
    if secret is None:
        raise ProblemError(401, "invalid_token", "the Authorization header must be 'Bearer <token>'", headers=_CHALLENGE)
    # Reads write nothing, not even when a token was last used.
    token = authenticate(session, secret, record_use=request.method not in ("GET", "HEAD", "OPTIONS"))
    if token is None:
        raise ProblemError(401, "invalid_token", "the token is unknown or revoked", headers=_CHALLENGE)
    callers: CallerIdentity = request.app.state.callers
    callers.remember(secret)
    return token


CallerDep = Annotated[ApiToken | None, Depends(get_caller)]


def require_scope(scope: str) -> Callable[[ApiToken | None], ApiToken]:
    """A dependency that returns the caller's token if it carries ``scope``."""

    def dependency(caller: CallerDep) -> ApiToken:
        if caller is None:
            raise ProblemError(401, "unauthorized", "this request needs 'Authorization: Bearer <token>'", headers=_CHALLENGE)
        if not caller.allows(scope):
            raise ProblemError(403, "insufficient_scope", f"the token lacks the '{scope}' scope")
        return caller

    return dependency


WriterDep = Annotated[ApiToken, Depends(require_scope("write"))]

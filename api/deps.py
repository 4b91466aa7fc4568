"""Dependencies routes declare with ``Annotated``: the session, storage, settings and
the caller's token."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

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


def require_scope(scope: str, *alternatives: str) -> Callable[[Request, Session], ApiToken]:
    """A dependency that returns the caller's token if it carries ``scope`` (or one of
    the ``alternatives``; the route then checks which one it needs)."""

    def dependency(request: Request, session: SessionDep) -> ApiToken:
        header = request.headers.get("authorization", "")
        kind, _, secret = header.partition(" ")
        if not header:
            raise ProblemError(401, "unauthorized", "this request needs 'Authorization: Bearer <token>'", headers=_CHALLENGE)
        if kind.lower() != "bearer" or not secret.strip():
            raise ProblemError(401, "invalid_token", "the Authorization header must be 'Bearer <token>'", headers=_CHALLENGE)
        token = authenticate(session, secret.strip())
        if token is None:
            raise ProblemError(401, "invalid_token", "the token is unknown or revoked", headers=_CHALLENGE)
        if not any(token.allows(s) for s in (scope, *alternatives)):
            raise ProblemError(403, "insufficient_scope", f"the token lacks the '{scope}' scope")
        return token

    return dependency


WriterDep = Annotated[ApiToken, Depends(require_scope("write"))]

"""API tokens: created once, shown once, stored only as a SHA-256 hash."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from sqlalchemy import select, update
from sqlalchemy.orm import Session, joinedload

from db.models.users import SCOPES, ApiToken, User

TOKEN_PREFIX = "nv_"


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def get_or_create_user(session: Session, name: str) -> User:
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        user = User(name=name)
        session.add(user)
        session.flush()
    return user


def create_token(
    session: Session, *, user_name: str, token_name: str, scopes: tuple[str, ...] = ("read", "write")
) -> tuple[ApiToken, str]:
    """Create a token for ``user_name`` (created if new). Returns the row and the secret,
    which is not stored anywhere and cannot be shown again."""
    unknown = set(scopes) - set(SCOPES)
    if unknown:
        raise ValueError(f"unknown scopes {sorted(unknown)}; known: {list(SCOPES)}")
    user = get_or_create_user(session, user_name)
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user_id=user.id, name=token_name, token_hash=hash_token(secret), scopes=list(scopes))
    session.add(token)
    session.flush()
    return token, secret


def authenticate(session: Session, secret: str, *, record_use: bool = True) -> ApiToken | None:
    """The active token whose hash matches ``secret``, with its user loaded; else None.
    Records when it was last used, unless ``record_use`` is false (reads, which write
    nothing)."""
    token = session.scalar(
        select(ApiToken)
        .options(joinedload(ApiToken.user))
        .where(ApiToken.token_hash == hash_token(secret), ApiToken.revoked_at.is_(None))
    )
    if token is not None and record_use:
        session.execute(
            update(ApiToken).where(ApiToken.id == token.id).values(last_used_at=dt.datetime.now(dt.UTC))
        )
    return token

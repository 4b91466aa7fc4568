"""Who a request is, for the rate limits: ``CallerIdentity.key(scope)``.

A caller is its API token only once that token has authenticated on this process (the
``get_caller`` dependency remembers it here); any other request, including one with an
unknown, revoked or made-up token, is its network address. So a fresh random token per
request buys no fresh bucket: it is counted against the address, and answered 401.

The address is the TCP peer, except when the peer is one of the proxies the operator
trusts (``NIRVANA_TRUSTED_PROXIES``): then ``X-Forwarded-For`` is read from the right,
past every trusted hop, and the first untrusted address is the caller. A client that
talks to the server directly cannot choose its address by sending the header. The
server must run with uvicorn's own proxy handling off (``proxy_headers=False``, as
``nirvana api`` and ``nirvana serve`` do), or uvicorn would rewrite the peer first.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from ipaddress import IPv4Network, IPv6Network, ip_address

from starlette.types import Scope

ProxyNetwork = IPv4Network | IPv6Network
#: Tokens remembered per process; beyond this the least recently seen is forgotten
#: (and its next request is counted against its address until it authenticates again).
MAX_KNOWN_TOKENS = 10_000


def bearer_secret(authorization: str) -> str | None:
    """The secret of an ``Authorization: Bearer <secret>`` value, else None."""
    kind, _, secret = authorization.partition(" ")
    secret = secret.strip()
    return secret if kind.lower() == "bearer" and secret else None


def token_key(secret: str) -> str:
    """The rate-limit key of a token: a hash, so no secret is kept in memory."""
    return "token:" + hashlib.sha256(secret.encode()).hexdigest()


class CallerIdentity:
    """Keys requests by caller; one per app, shared by the middleware and the routes."""

    def __init__(self, trusted_proxies: Sequence[ProxyNetwork] = ()) -> None:
        self.trusted = tuple(trusted_proxies)
        self._known: OrderedDict[str, None] = OrderedDict()

    def remember(self, secret: str) -> None:
        """Record that ``secret`` authenticated: its requests are keyed by the token."""
        key = token_key(secret)
        self._known.pop(key, None)
        self._known[key] = None
        if len(self._known) > MAX_KNOWN_TOKENS:
            self._known.popitem(last=False)

    def key(self, scope: Scope) -> str:
        """``token:<sha256>`` for a token that authenticated here, else ``addr:<ip>``."""
        headers = scope.get("headers", [])
        for name, value in headers:
            if name == b"authorization":
                secret = bearer_secret(value.decode("latin-1"))
                if secret is not None and token_key(secret) in self._known:
                    return token_key(secret)
                break
        return "addr:" + self.address(scope)

    def address(self, scope: Scope) -> str:
        """The caller's address: the peer, or the forwarded address a trusted peer gives."""
        client = scope.get("client")
        address = client[0] if client else "unknown"
        if not self._trusts(address):
            return address
        forwarded = ",".join(
            value.decode("latin-1") for name, value in scope.get("headers", []) if name == b"x-forwarded-for"
        )
        for hop in reversed([part.strip() for part in forwarded.split(",") if part.strip()]):
            try:
                address = str(ip_address(hop))
            except ValueError:
                break  # a malformed hop: keep the last address a trusted proxy vouched for
            if not self._trusts(address):
                break
        return address

    def _trusts(self, address: str) -> bool:
        try:
            ip = ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.trusted)

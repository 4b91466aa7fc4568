"""Links the API writes into responses, built from what the operator configured and
never from the request's ``Host`` header (which any client can set)."""

from __future__ import annotations

from starlette.requests import Request


def same_route_url(request: Request, public_url: str | None, **params: str) -> str:
    """This request's path and query with ``params`` replaced: absolute under
    ``public_url`` (``NIRVANA_PUBLIC_URL``) when it is set, else relative (``/api/...``)."""
    relative = request.url.include_query_params(**params)
    path = relative.path + (f"?{relative.query}" if relative.query else "")
    return f"{public_url.rstrip('/')}{path}" if public_url else path

"""Downloading a ticket's mask and init: streamed, content-addressed, cacheable."""

from __future__ import annotations

import re
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from api.deps import SessionDep, StorageDep
from api.errors import ProblemError
from api.openapi import problems
from api.tickets import TicketRef, ticket_or_404
from db.blobs import read_range

router = APIRouter(tags=["downloads"])

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
# Content-addressed: the bytes behind a URL+ETag never change.
_CACHE_FOREVER = "public, max-age=31536000, immutable"


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """(start, end inclusive) of a single ``bytes=`` range, or None if unsatisfiable.
    Multiple ranges are not supported and are treated as unsatisfiable."""
    match = _RANGE.match(header.strip())
    if not match or (not match.group(1) and not match.group(2)):
        return None
    first, last = match.groups()
    if not first:  # suffix: the last N bytes
        length = int(last)
        if length == 0:
            return None
        return max(0, size - length), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        return None
    return start, end


def _download(kind: Literal["mask", "init"], ref: str, request: Request, session: SessionDep, storage: StorageDep) -> Response:
    ticket = ticket_or_404(session, ref)
    sha = ticket.mask_sha256 if kind == "mask" else ticket.init_sha256
    etag = f'"{sha}"'
    headers = {
        "ETag": etag,
        "Cache-Control": _CACHE_FOREVER,
        "Accept-Ranges": "bytes",
        "Content-Disposition": f'attachment; filename="{kind}.safetensors"',
        "X-Checksum-Sha256": sha,
    }
    if_none_match = request.headers.get("if-none-match", "")
    if etag in [tag.strip() for tag in if_none_match.split(",")] or if_none_match.strip() == "*":
        return Response(status_code=304, headers=headers)
    size = storage.size(sha)
    if request.method == "HEAD":
        # The headers alone: clients check the ETag (sha256) and size before fetching.
        return Response(status_code=200, headers={**headers, "Content-Length": str(size)})
    range_header = request.headers.get("range")
    if range_header:
        bounds = parse_range(range_header, size)
        if bounds is None:
            raise ProblemError(416, "range_not_satisfiable", f"cannot serve {range_header!r} of a {size}-byte file",
                               headers={"Content-Range": f"bytes */{size}"})
        start, end = bounds
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        headers["Content-Length"] = str(end - start + 1)
        return StreamingResponse(read_range(storage.open(sha), start, end - start + 1), status_code=206,
                                 media_type="application/octet-stream", headers=headers)
    headers["Content-Length"] = str(size)
    return StreamingResponse(read_range(storage.open(sha), 0, size), media_type="application/octet-stream", headers=headers)


_RESPONSES = {206: {"description": "The requested range"}, 304: {"description": "Not modified"}, **problems(404, 409, 416)}


# Two routes, not one api_route: each method gets an operation id of its own.
@router.get("/tickets/{ref}/mask", response_class=StreamingResponse, responses=_RESPONSES)
@router.head("/tickets/{ref}/mask", response_class=StreamingResponse, responses=_RESPONSES)
def download_mask(ref: TicketRef, request: Request, session: SessionDep, storage: StorageDep) -> Response:
    """``mask.safetensors``. ``ETag`` is its sha256; honours ``If-None-Match`` and ``Range``."""
    return _download("mask", ref, request, session, storage)


# Two routes, not one api_route: each method gets an operation id of its own.
@router.get("/tickets/{ref}/init", response_class=StreamingResponse, responses=_RESPONSES)
@router.head("/tickets/{ref}/init", response_class=StreamingResponse, responses=_RESPONSES)
def download_init(ref: TicketRef, request: Request, session: SessionDep, storage: StorageDep) -> Response:
    """``init.safetensors`` (generated from the seed at upload for seed-only tickets)."""
    return _download("init", ref, request, session, storage)

"""Downloading a ticket's mask and init: streamed, content-addressed, cacheable.

A download asks the database one thing, the digests of the ticket's files (three short
columns), and remembers the answer: a ticket is immutable, so the next download or
conditional GET of it touches no database at all. The body streams from storage after
the request's session has ended, holding no connection.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from api.deps import SessionDep, StorageDep
from api.errors import ProblemError
from api.forms import COMPACT, Form, form_sha
from api.tickets import blob_digests_or_404, ticket_or_404
from db.blobs import read_range
from db.repositories.tickets import BlobDigests

router = APIRouter(tags=["downloads"])

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
# Content-addressed: the bytes behind a URL+ETag never change.
_CACHE_FOREVER = "public, max-age=31536000, immutable"
DIGEST_CACHE_SIZE = 100_000


class DigestCache:
    """Full ticket id -> its file digests, least recently used evicted. Prefixes are
    not kept: a prefix unique today may match two tickets tomorrow."""

    def __init__(self, size: int = DIGEST_CACHE_SIZE) -> None:
        self.size = size
        self.entries: OrderedDict[str, BlobDigests] = OrderedDict()

    def get(self, ref: str) -> BlobDigests | None:
        found = self.entries.get(ref.lower())
        if found is not None:
            self.entries.move_to_end(found.ticket_id)
        return found

    def forget(self, ticket_id: str) -> None:
        self.entries.pop(ticket_id, None)

    def put(self, digests: BlobDigests) -> None:
        self.entries[digests.ticket_id] = digests
        if len(self.entries) > self.size:
            self.entries.popitem(last=False)


def _digests(request: Request, session: SessionDep, ref: str) -> BlobDigests:
    cache: DigestCache = request.app.state.digest_cache
    found = cache.get(ref)
    if found is None:
        found = blob_digests_or_404(session, ref)
        cache.put(found)
    return found


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


def _file(kind: Literal["mask", "init"], form: Form, ref: str, request: Request, session: SessionDep,
          storage: StorageDep) -> tuple[str, str]:
    """(sha256, download name) of ``kind`` in ``form``. Dense files and compact files
    already stored are answered from the per-process cache; a compact file not yet
    derived is derived once (``api.forms``) and the cache entry renewed."""
    digests = _digests(request, session, ref)
    if form == "dense":
        return (digests.mask_sha256 if kind == "mask" else digests.init_sha256), f"{kind}.safetensors"
    if COMPACT[kind] != form:
        raise ProblemError(422, "invalid_format", f"the {kind} comes as dense or {COMPACT[kind]}, not {form}")
    sha = digests.mask_packed_sha256 if kind == "mask" else digests.init_kept_sha256
    if sha is None:
        sha, _ = form_sha(session, storage, ticket_or_404(session, digests.ticket_id), kind, form)
        cache: DigestCache = request.app.state.digest_cache
        cache.forget(digests.ticket_id)
    return sha, f"{kind}.{form}.safetensors"


def _download(kind: Literal["mask", "init"], ref: str, request: Request, session: SessionDep, storage: StorageDep,
              form: Form = "dense") -> Response:
    sha, filename = _file(kind, form, ref, request, session, storage)
    etag = f'"{sha}"'
    headers = {
        "ETag": etag,
        "Cache-Control": _CACHE_FOREVER,
        "Accept-Ranges": "bytes",
        "Content-Disposition": f'attachment; filename="{filename}"',
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


@router.api_route("/tickets/{ref}/mask", methods=["GET", "HEAD"], response_class=StreamingResponse)
def download_mask(ref: str, request: Request, session: SessionDep, storage: StorageDep,
                  format: Literal["dense", "packed"] = "dense") -> Response:
    """``mask.safetensors``, or with ``format=packed`` the entropy-coded mask
    (``mask.packed.safetensors``). ``ETag`` is the served file's sha256; honours
    ``If-None-Match`` and ``Range``."""
    return _download("mask", ref, request, session, storage, format)


@router.api_route("/tickets/{ref}/init", methods=["GET", "HEAD"], response_class=StreamingResponse)
def download_init(ref: str, request: Request, session: SessionDep, storage: StorageDep,
                  format: Literal["dense", "kept"] = "dense") -> Response:
    """``init.safetensors`` (generated from the seed at upload for seed-only tickets),
    or with ``format=kept`` the kept values only (``init.kept.safetensors``)."""
    return _download("init", ref, request, session, storage, format)

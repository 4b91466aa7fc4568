"""Downloading a ticket's mask and init: content-addressed, cacheable, and fast.

A download asks the database one thing, the digests of the ticket's files (three short
columns), and remembers the answer: a ticket is immutable, so the next download or
conditional GET of it touches no database at all. Blobs small enough are kept in memory
once read (``BlobMemory``: content-addressed bytes never go stale), so a popular mask is
answered without a worker thread, a file or a query; bigger ones stream from storage
after the request's session has ended, holding no connection.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from api.deps import SessionDep, StorageDep
from api.errors import ProblemError
from api.forms import COMPACT, Form, form_sha
from api.openapi import problems
from api.settings import ApiSettings
from api.tickets import TicketRef, blob_digests_or_404, ticket_or_404
from db.blobs import BlobStorage, blob_key, read_range
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
            try:
                self.entries.move_to_end(found.ticket_id)
            except KeyError:  # evicted meanwhile by a request on a worker thread
                pass
        return found

    def forget(self, ticket_id: str) -> None:
        self.entries.pop(ticket_id, None)

    def put(self, digests: BlobDigests) -> None:
        self.entries[digests.ticket_id] = digests
        if len(self.entries) > self.size:
            self.entries.popitem(last=False)


class BlobMemory:
    """sha256 -> the blob's bytes, for blobs up to an eighth of ``max_bytes``; least
    recently used evicted. Touched on the event loop only."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.entries: OrderedDict[str, bytes] = OrderedDict()
        self.size = 0

    def fits(self, size: int) -> bool:
        return 0 < size * 8 <= self.max_bytes

    def get(self, sha: str) -> bytes | None:
        found = self.entries.get(sha)
        if found is not None:
            self.entries.move_to_end(sha)
        return found

    def put(self, sha: str, body: bytes) -> None:
        if sha in self.entries or not self.fits(len(body)):
            return
        self.entries[sha] = body
        self.size += len(body)
        while self.size > self.max_bytes:
            _, oldest = self.entries.popitem(last=False)
            self.size -= len(oldest)


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


def _stored_file(kind: Literal["mask", "init"], form: Form, digests: BlobDigests) -> tuple[str, str] | None:
    """(sha256, download name) of ``kind`` in ``form`` as ``digests`` know it; None for
    a compact file not derived yet."""
    if form == "dense":
        return (digests.mask_sha256 if kind == "mask" else digests.init_sha256), f"{kind}.safetensors"
    if COMPACT[kind] != form:
        raise ProblemError(422, "invalid_format", f"the {kind} comes as dense or {COMPACT[kind]}, not {form}")
    sha = digests.mask_packed_sha256 if kind == "mask" else digests.init_kept_sha256
    return None if sha is None else (sha, f"{kind}.{form}.safetensors")


def _file(kind: Literal["mask", "init"], form: Form, ref: str, request: Request, session: SessionDep,
          storage: StorageDep) -> tuple[str, str]:
    """(sha256, download name) of ``kind`` in ``form``. Dense files and compact files
    already stored are answered from the per-process cache; a compact file not yet
    derived is derived once (``api.forms``) and the cache entry renewed."""
    digests = _digests(request, session, ref)
    stored = _stored_file(kind, form, digests)
    if stored is not None:
        return stored
    sha, _ = form_sha(session, storage, ticket_or_404(session, digests.ticket_id), kind, form)
    cache: DigestCache = request.app.state.digest_cache
    cache.forget(digests.ticket_id)
    return sha, f"{kind}.{form}.safetensors"


async def _download(kind: Literal["mask", "init"], ref: str, request: Request, session: SessionDep,
                    storage: StorageDep, form: Form = "dense") -> Response:
    cache: DigestCache = request.app.state.digest_cache
    cached = cache.get(ref) if form == "dense" else None
    # The common case, a dense file of a ticket seen before: no thread, no query.
    stored = _stored_file(kind, form, cached) if cached is not None else None
    if stored is None:
        stored = await run_in_threadpool(_file, kind, form, ref, request, session, storage)
    sha, filename = stored
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
    handed_off = _hand_off(request, sha, headers)
    if handed_off is not None:
        return handed_off
    memory: BlobMemory = request.app.state.blob_memory
    body = memory.get(sha)
    size = len(body) if body is not None else await run_in_threadpool(storage.size, sha)
    if request.method == "HEAD":
        # The headers alone: clients check the ETag (sha256) and size before fetching.
        return Response(status_code=200, headers={**headers, "Content-Length": str(size)})
    if body is None and memory.fits(size):
        body = await run_in_threadpool(_read_all, storage, sha)
        memory.put(sha, body)
    start, end, status = 0, size - 1, 200
    range_header = request.headers.get("range")
    if range_header:
        bounds = parse_range(range_header, size)
        if bounds is None:
            raise ProblemError(416, "range_not_satisfiable", f"cannot serve {range_header!r} of a {size}-byte file",
                               headers={"Content-Range": f"bytes */{size}"})
        start, end = bounds
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    if body is not None:
        part = body if status == 200 else body[start : end + 1]  # no copy of a whole file
        return Response(part, status_code=status, media_type="application/octet-stream", headers=headers)
    headers["Content-Length"] = str(end - start + 1)
    handle = await run_in_threadpool(storage.open, sha)  # a request to the bucket with S3
    return StreamingResponse(read_range(handle, start, end - start + 1), status_code=status,
                             media_type="application/octet-stream", headers=headers)  # fmt: skip


def _read_all(storage: BlobStorage, sha: str) -> bytes:
    with storage.open(sha) as handle:
        return handle.read()


def _hand_off(request: Request, sha: str, headers: dict[str, str]) -> Response | None:
    """A GET someone else serves, when the settings say so: nginx (``X-Accel-Redirect``
    to its internal location for blob files, which serves ranges too) or the bucket's
    or CDN's own URL (a redirect). None: the API streams the bytes itself."""
    if request.method != "GET":
        return None
    settings: ApiSettings = request.app.state.settings
    if settings.accel_redirect_prefix:
        return Response(status_code=200, headers={**headers, "X-Accel-Redirect": settings.accel_redirect_prefix + blob_key(sha)})
    if settings.blob_url_base:
        location = f"{settings.blob_url_base.rstrip('/')}/{blob_key(sha)}"
        return Response(status_code=307, headers={**headers, "Location": location})
    return None


_RESPONSES = {206: {"description": "The requested range"}, 304: {"description": "Not modified"}, **problems(404, 409, 416, 422)}


# Two routes, not one api_route: each method gets an operation id of its own.
@router.get("/tickets/{ref}/mask", response_class=StreamingResponse, responses=_RESPONSES)
@router.head("/tickets/{ref}/mask", response_class=StreamingResponse, responses=_RESPONSES)
async def download_mask(ref: TicketRef, request: Request, session: SessionDep, storage: StorageDep,
                        format: Literal["dense", "packed"] = "dense") -> Response:
    """``mask.safetensors``, or with ``format=packed`` the entropy-coded mask
    (``mask.packed.safetensors``). ``ETag`` is the served file's sha256; honours
    ``If-None-Match`` and ``Range``."""
    return await _download("mask", ref, request, session, storage, format)


# Two routes, not one api_route: each method gets an operation id of its own.
@router.get("/tickets/{ref}/init", response_class=StreamingResponse, responses=_RESPONSES)
@router.head("/tickets/{ref}/init", response_class=StreamingResponse, responses=_RESPONSES)
async def download_init(ref: TicketRef, request: Request, session: SessionDep, storage: StorageDep,
                        format: Literal["dense", "kept"] = "dense") -> Response:
    """``init.safetensors`` (generated from the seed at upload for seed-only tickets),
    or with ``format=kept`` the kept values only (``init.kept.safetensors``)."""
    return await _download("init", ref, request, session, storage, format)

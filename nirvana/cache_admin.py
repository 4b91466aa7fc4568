"""Looking after the client's cache (:mod:`nirvana.cache`): what ``nirvana cache ls |
verify | rm ID | prune`` do, as functions of a :class:`~nirvana.cache.BlobCache`.

Nothing here talks to a server: a removed or corrupt blob is simply downloaded again
the next time a ticket needs it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from nirvana.cache import BlobCache, is_digest, sha256_file
from nirvana.errors import NirvanaError


@dataclass(frozen=True)
class CachedTicket:
    """One ticket the cache knows: its JSON's main fields and its blobs."""

    id: str
    task: str
    architecture: str
    title: str
    blobs: dict[str, str]
    #: Bytes of the blobs present on disk.
    size: int
    #: Kinds (``mask``, ``init``) named in the ref whose blob is not on disk.
    missing: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Removed:
    """What a clean-up removed: file names and the bytes they held."""

    files: list[str]
    bytes: int


def tickets(cache: BlobCache) -> list[CachedTicket]:
    """Every ticket with a ref in the cache, by id."""
    found = []
    for ref in sorted(cache.refs.glob("*.json")) if cache.refs.is_dir() else []:
        data = cache.read_ref(ref.stem)
        ticket = data.get("ticket") or {}
        blobs = {str(k): str(v) for k, v in (data.get("blobs") or {}).items()}
        present = {k: d for k, d in blobs.items() if cache.has(d)}
        found.append(
            CachedTicket(
                id=ref.stem,
                task=str(ticket.get("task", "?")),
                architecture=str(ticket.get("architecture", "?")),
                title=str(ticket.get("title", "")),
                blobs=blobs,
                size=sum(cache.blob(d).stat().st_size for d in present.values()),
                missing=sorted(set(blobs) - set(present)),
            )
        )
    return found


def _blob_files(cache: BlobCache) -> list[Path]:
    return sorted(p for p in cache.blobs.iterdir() if p.is_file()) if cache.blobs.is_dir() else []


def verify(cache: BlobCache) -> tuple[list[str], Removed]:
    """Hash every finished blob. Returns the digests that matched and the corrupt ones,
    which are removed (the next use downloads them again)."""
    good: list[str] = []
    bad: list[str] = []
    size = 0
    for path in _blob_files(cache):
        if not is_digest(path.name):
            continue  # a .part or a stray file: prune's business
        if sha256_file(path) == path.name:
            good.append(path.name)
        else:
            size += path.stat().st_size
            path.unlink(missing_ok=True)
            bad.append(path.name)
    return good, Removed(files=bad, bytes=size)


def remove(cache: BlobCache, ref: str) -> tuple[str, Removed]:
    """Forget one ticket (full id or unique prefix): its ref, and its blobs that no other
    cached ticket names. Returns its full id and what went.

    Raises:
        NirvanaError: ``not_cached`` when no cached ticket matches ``ref``.
    """
    full = cache.resolve(ref)
    if full is None:
        raise NirvanaError(f"no cached ticket matches {ref!r}; `nirvana cache ls` lists them", code="not_cached")
    own = set(cache.read_ref(full).get("blobs", {}).values())
    (cache.refs / f"{full}.json").unlink(missing_ok=True)
    still_named = _named(cache)
    files, size = [], 0
    for digest in sorted(own - still_named):
        for path in (cache.blob(digest), cache.blobs / f"{digest}.part"):
            if path.is_file():
                size += path.stat().st_size
                path.unlink()
                files.append(path.name)
    return full, Removed(files=files, bytes=size)


def prune(cache: BlobCache) -> Removed:
    """Remove every file in ``blobs/`` that no ref names: blobs of forgotten tickets,
    unfinished ``.part`` files of them, and stray files."""
    named = _named(cache)
    files, size = [], 0
    for path in _blob_files(cache):
        if path.name.removesuffix(".part") in named:
            continue
        size += path.stat().st_size
        path.unlink()
        files.append(path.name)
    return Removed(files=files, bytes=size)


def _named(cache: BlobCache) -> set[str]:
    if not cache.refs.is_dir():
        return set()
    return {str(d) for ref in cache.refs.glob("*.json") for d in (cache.read_ref(ref.stem).get("blobs") or {}).values()}

"""The client's download cache: blobs by digest, names by reference.

```
$NIRVANA_CACHE/blobs/<sha256>        a verified download (immutable)
$NIRVANA_CACHE/blobs/<sha256>.part   an unfinished one, resumed with Range
$NIRVANA_CACHE/refs/<ticket id>.json {"ticket": <ticket JSON>, "blobs": {"mask": sha, "init": sha}}
```

A blob's name is the sha256 the server sent as its ``ETag``; a file only gets that name
after its bytes were hashed and matched. A disk can still rot and a hand can still edit,
so a blob is hashed again each time it is served: one that no longer matches its name
is removed and downloaded afresh (offline: ``DigestMismatchError``). Refs are written as
soon as a digest is known, so a process restarted mid-download knows which ``.part`` to
resume. Listing, checking and removing entries (``nirvana cache``) is
:mod:`nirvana.cache_admin`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from nirvana.errors import DigestMismatchError, NirvanaError, OfflineError, raise_for_problem

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20


def etag_digest(response: httpx.Response) -> str:
    """The sha256 in a download's ``ETag`` (quotes and a weak ``W/`` prefix dropped)."""
    tag = str(response.headers.get("etag", "")).strip()
    tag = tag.removeprefix("W/").strip('"').lower()
    if not _SHA256.match(tag):
        raise NirvanaError(f"the server sent no sha256 ETag for {response.request.url}", code="missing_etag")
    return tag


def is_digest(name: str) -> bool:
    """Whether ``name`` is a sha256 in lowercase hex (a finished blob's file name)."""
    return bool(_SHA256.match(name))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class BlobCache:
    """Files under ``root`` (``$NIRVANA_HOME/cache``); see the module docstring."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs"
        self.refs = root / "refs"

    def blob(self, digest: str) -> Path:
        return self.blobs / digest

    def has(self, digest: str | None) -> bool:
        return digest is not None and self.blob(digest).is_file()

    def intact(self, digest: str | None) -> bool:
        """Whether the blob is cached and its bytes still hash to its name; a blob that
        does not is removed (so the next fetch downloads it afresh)."""
        if digest is None or not self.has(digest):
            return False
        if sha256_file(self.blob(digest)) == digest:
            return True
        self.blob(digest).unlink(missing_ok=True)
        return False

    # --- refs ---------------------------------------------------------------------

    def read_ref(self, ticket_id: str) -> dict[str, Any]:
        try:
            data = json.loads((self.refs / f"{ticket_id}.json").read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def write_ref(self, ticket_id: str, *, ticket: dict[str, Any] | None = None, **blobs: str) -> None:
        """Merge ``ticket`` and blob digests (``mask=sha``) into the ticket's ref,
        atomically (write then rename), so readers never see half a file."""
        ref = self.read_ref(ticket_id)
        if ticket is not None:
            ref["ticket"] = ticket
        ref.setdefault("blobs", {}).update(blobs)
        self.refs.mkdir(parents=True, exist_ok=True)
        tmp = self.refs / f".{ticket_id}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(ref, default=str))
        tmp.replace(self.refs / f"{ticket_id}.json")

    def resolve(self, ref: str) -> str | None:
        """The full id of the one cached ticket ``ref`` is an id or prefix of; None if
        none matches. Raises ``OfflineError`` when the prefix is ambiguous."""
        ref = ref.lower()
        if not self.refs.is_dir():
            return None
        matches = [p.stem for p in self.refs.glob("*.json") if p.stem.startswith(ref)]
        if len(matches) > 1:
            raise OfflineError(f"{ref!r} matches {len(matches)} cached tickets; give more of the id")
        return matches[0] if matches else None

    # --- downloads ----------------------------------------------------------------

    def fetch(
        self,
        http: httpx.Client,
        url: str,
        *,
        ticket_id: str,
        kind: str,
        offline: bool,
        force: bool = False,
        on_bytes: Callable[[int, int | None], None] | None = None,
    ) -> Path:
        """The verified cached file behind ``url`` (``/tickets/<id>/mask``), downloading
        what is missing.

        A cached blob is re-hashed (a corrupted one is removed and downloaded again),
        then revalidated with ``If-None-Match`` (304: nothing to send); a ``.part`` left
        by an interrupted download is resumed with ``Range``; every finished download is
        hashed and must equal the ``ETag``.

        Args:
            ticket_id: the full ticket id, under which the digest is remembered.
            kind: ``"mask"`` or ``"init"``.
            offline: serve only from the cache, never touch the network.
            force: download the whole file again, whatever the cache holds.
            on_bytes: called with (bytes so far, total or None) while downloading.

        Raises:
            OfflineError: ``offline`` and the blob is not cached.
            DigestMismatchError: the bytes did not hash to the ``ETag`` (the file is
                removed; retrying downloads it afresh), or, offline, a cached blob
                that no longer hashes to its name.
            NirvanaError: the server's error, via ``raise_for_problem``.
        """
        known = self.read_ref(ticket_id).get("blobs", {}).get(kind)
        cached = self.has(known)
        intact = self.intact(known)
        if offline:
            if intact:
                return self.blob(known)
            if cached:
                raise DigestMismatchError(f"the cached {kind} of {ticket_id[:12]} is corrupt (removed); go online to fetch it again")
            raise OfflineError(f"NIRVANA_OFFLINE is set and the {kind} of {ticket_id[:12]} is not cached")
        headers: dict[str, str] = {}
        part = self.blobs / f"{known}.part" if known else None
        if force and part is not None:
            part.unlink(missing_ok=True)
        offset = 0
        if intact and not force:
            headers["If-None-Match"] = f'"{known}"'
        elif part is not None and part.is_file() and part.stat().st_size > 0:
            offset = part.stat().st_size
            headers["Range"] = f"bytes={offset}-"
        with http.stream("GET", url, headers=headers) as response:
            if response.status_code == 304 and known:
                return self.blob(known)
            if response.status_code == 416 and part is not None:
                part.unlink(missing_ok=True)  # the .part is not a prefix we can extend
                response.close()
                return self.fetch(http, url, ticket_id=ticket_id, kind=kind, offline=False, force=force, on_bytes=on_bytes)
            if response.status_code >= 400:
                response.read()
                raise_for_problem(response)
            digest = etag_digest(response)
            self.write_ref(ticket_id, **{kind: digest})  # type: ignore[arg-type]  # before the body: a restart resumes
            return self._receive(response, digest, resumed=response.status_code == 206, on_bytes=on_bytes)

    def _receive(
        self,
        response: httpx.Response,
        digest: str,
        *,
        resumed: bool,
        on_bytes: Callable[[int, int | None], None] | None,
    ) -> Path:
        self.blobs.mkdir(parents=True, exist_ok=True)
        part = self.blobs / f"{digest}.part"
        done = part.stat().st_size if resumed and part.is_file() else 0
        length = response.headers.get("content-length")
        total = done + int(length) if length and length.isdigit() else None
        # "ab" only when the server answered our Range (206); a 200 sends the whole file.
        with part.open("ab" if resumed else "wb") as fh:
            for chunk in response.iter_bytes(_CHUNK):
                fh.write(chunk)
                done += len(chunk)
                if on_bytes is not None:
                    on_bytes(done, total)
            fh.flush()
            os.fsync(fh.fileno())
        actual = sha256_file(part)
        if actual != digest:
            part.unlink(missing_ok=True)
            raise DigestMismatchError(
                f"downloaded {response.request.url.path} hashes to {actual[:12]}, "
                f"the server's ETag says {digest[:12]}; the file was removed, try again"
            )
        final = self.blob(digest)
        part.replace(final)
        return final

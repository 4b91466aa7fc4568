"""Where Nirvana keeps its files on this machine.

The server's files and the token live under ``NIRVANA_HOME`` (default: the user's
data directory, e.g. ``~/.local/share/nirvana``); the client's download cache is apart
from them, under ``NIRVANA_CACHE`` (default: the user's cache directory, e.g.
``~/.cache/nirvana``), as huggingface_hub keeps its cache apart from its token:

```
$NIRVANA_HOME/pg/           the embedded PostgreSQL data directory (``nirvana serve``)
$NIRVANA_HOME/blobs/        the server's content-addressed blobs
$NIRVANA_HOME/token         the write token (mode 0600): ``nirvana login`` or ``nirvana serve``
$NIRVANA_HOME/data/         task data ``nirvana data fetch`` downloads (or ``NIRVANA_DATA_DIR``)
$NIRVANA_CACHE/blobs/       the client's downloads, one file per sha256
$NIRVANA_CACHE/refs/        the client's ticket JSON and blob digests, per ticket id
```
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

__all__ = [
    "default_home", "home", "pg_dir", "token_file", "cache_dir", "read_token_file", "write_token_file",
    "remove_token_file",
]  # fmt: skip


def default_home() -> Path:
    """``NIRVANA_HOME``, else the user's data directory (``~/.local/share/nirvana``)."""
    env = os.environ.get("NIRVANA_HOME")
    return Path(env) if env else Path(platformdirs.user_data_dir("nirvana"))


def default_data_dir() -> Path:
    """Where task data lives unless a caller names a folder: ``NIRVANA_DATA_DIR``, else
    ``$NIRVANA_HOME/data``. ``nirvana data fetch`` downloads there; the server's settings
    and the CLI pass it to the tasks, which look there and then in the system's folders
    (e.g. Debian's ``/usr/share/datasets``)."""
    explicit = os.environ.get("NIRVANA_DATA_DIR")
    return Path(explicit).expanduser() if explicit else default_home() / "data"


def home(value: str | Path | None = None) -> Path:
    """``value`` if given, else ``NIRVANA_HOME``, else the user's data directory."""
    return Path(value).expanduser() if value is not None else default_home()


def pg_dir(root: Path) -> Path:
    return root / "pg"


def token_file(root: Path) -> Path:
    return root / "token"


def cache_dir(value: str | Path | None = None) -> Path:
    """The client's cache: ``value`` if given, else ``NIRVANA_CACHE``, else the user's
    cache directory (``~/.cache/nirvana``)."""
    if value is not None:
        return Path(value).expanduser()
    env = os.environ.get("NIRVANA_CACHE")
    return Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("nirvana"))


def read_token_file(root: Path) -> str | None:
    """The secret in ``$NIRVANA_HOME/token``, or None when there is no (non-empty) file."""
    path = token_file(root)
    try:
        secret = path.read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return secret or None


def write_token_file(root: Path, secret: str) -> Path:
    """Write ``secret`` to ``$NIRVANA_HOME/token`` readable by its owner only.

    The file is created with mode 0600 before the secret is written, so the secret is
    never readable by others, not even for an instant."""
    root.mkdir(parents=True, exist_ok=True)
    path = token_file(root)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an older file may have had looser bits; O_CREAT keeps them
        os.write(fd, (secret + "\n").encode())
    finally:
        os.close(fd)
    return path


def remove_token_file(root: Path) -> bool:
    """Delete ``$NIRVANA_HOME/token``; True if there was one."""
    try:
        token_file(root).unlink()
    except FileNotFoundError:
        return False
    return True

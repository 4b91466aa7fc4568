"""Finding a dataset's files among candidate folders, shared by every file format."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from nirvana.lottery.errors import TaskUnavailableError


def default_data_dir() -> Path:
    """Where task data lives unless a caller names a folder: ``NIRVANA_DATA_DIR``, else
    ``$NIRVANA_HOME/data``, else ``data`` in the user's data directory
    (``~/.local/share/nirvana/data``). ``nirvana data fetch`` downloads there, and the
    tasks read there (then from the system's folders, e.g. Debian's)."""
    explicit = os.environ.get("NIRVANA_DATA_DIR")
    if explicit:
        return Path(explicit).expanduser()
    home = os.environ.get("NIRVANA_HOME")
    return (Path(home).expanduser() if home else Path(platformdirs.user_data_dir("nirvana"))) / "data"


class FileSource:
    """A dataset read from files. Subclasses say which files make a complete folder
    (``files_in``) and tell people where to put them (``placement_hint``)."""

    subdir: str

    def files_in(self, folder: Path) -> list[Path] | None:
        """The dataset's files in ``folder``, or None if any is missing."""
        raise NotImplementedError

    def placement_hint(self) -> str:
        """Where and in which form the files belong, for the "not found" error."""
        raise NotImplementedError

    def find_or_none(self, candidates: list[Path]) -> Path | None:
        """The first folder of ``candidates`` holding every file."""
        for folder in candidates:
            if self.files_in(folder) is not None:
                return folder
        return None

    def find(self, candidates: list[Path]) -> Path:
        """As ``find_or_none``; raises ``TaskUnavailableError`` naming where it looked."""
        folder = self.find_or_none(candidates)
        if folder is None:
            looked = ", ".join(str(c) for c in candidates)
            raise TaskUnavailableError(
                f"{self.subdir} data not found (looked in {looked}); run `nirvana data fetch {self.subdir}`, "
                f"or {self.placement_hint()}"
            )
        return folder

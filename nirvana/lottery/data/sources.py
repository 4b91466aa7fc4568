"""Finding a dataset's files among candidate folders, shared by every file format."""

from __future__ import annotations

from pathlib import Path

from nirvana.lottery.errors import TaskUnavailableError


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

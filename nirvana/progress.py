"""Progress bars on stderr (tqdm), imported only when one is shown."""

from __future__ import annotations

from typing import Any


def percent_bar(label: str) -> Any:
    """A 0-100 % bar for a verification's ``progress``."""
    from tqdm import tqdm

    return tqdm(total=100, desc=label, unit="%", bar_format="{l_bar}{bar}| {n:.0f}% {postfix}")


def bytes_bar(label: str) -> Any:
    """A byte counter whose ``update_to(done, total)`` suits ``BlobCache.fetch``."""
    from tqdm import tqdm

    class _Bar(tqdm):  # type: ignore[misc]  # tqdm ships no types
        def update_to(self, done: int, total: int | None) -> None:
            if total is not None and getattr(self, "total", None) != total:
                self.total = total
            self.update(done - self.n)

    return _Bar(desc=label, unit="B", unit_scale=True, leave=False, disable=None)  # off without a terminal

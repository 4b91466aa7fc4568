"""How to cite a ticket: one BibTeX entry, the same on the ticket's page, from
``nirvana cite ID`` and in an exported model card.

The entry is a ``@misc`` keyed ``nirvana:<short id>`` that names the ticket's full id,
its task, architecture and verdict, and the URL of its page on the server that holds
it, so a reader can find the very ticket (ids are content addresses: any server that
has it serves the same one).
"""

from __future__ import annotations

from dataclasses import dataclass

# BibTeX and LaTeX give these characters meaning; a title is free text.
_ESCAPES = {
    "\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "%": r"\%", "&": r"\&",
    "#": r"\#", "_": r"\_", "$": r"\$", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
}  # fmt: skip


def escape(text: str) -> str:
    """``text`` with BibTeX's special characters escaped, on one line."""
    return "".join(_ESCAPES.get(c, c) for c in " ".join(text.split()))


def verdict_words(*, winning: bool | None, verified: bool, verdict: str | None = None) -> str:
    """The verdict in words: the server's ``verdict`` when it sends one (``winning``,
    ``not_winning``, ``not_reproduced``), else read from ``winning`` and ``verified``."""
    if verdict:
        return verdict.replace("_", " ")
    if winning is True:
        return "winning"
    if winning is False:
        return "not winning"
    return "verified" if verified else "not yet verified"


@dataclass(frozen=True)
class TicketCitation:
    """What the entry says; ``url`` is the server's base URL (``http://host:port``)."""

    id: str
    task: str
    architecture: str
    verdict: str
    url: str
    title: str = ""
    author: str = ""
    year: int | None = None

    @property
    def page(self) -> str:
        return f"{self.url.rstrip('/')}/tickets/{self.id}"

    def bibtex(self) -> str:
        """The ``@misc`` entry, fields in a fixed order, ending in a newline."""
        title = f"{self.title}: " if self.title else ""
        fields = [
            ("title", f"{{{escape(title)}a {escape(self.architecture)} lottery ticket on {escape(self.task)}}}"),
            ("author", escape(self.author or "Nirvana contributors")),
            ("year", str(self.year) if self.year is not None else ""),
            ("howpublished", f"Nirvana, \\url{{{self.page}}}"),
            ("note", f"ticket {self.id}; task {escape(self.task)}; architecture "
                     f"{escape(self.architecture)}; verdict: {escape(self.verdict)}"),
            ("url", self.page),
        ]  # fmt: skip
        body = ",\n".join(f"  {name:<12} = {{{value}}}" for name, value in fields if value)
        return f"@misc{{nirvana:{self.id[:12]},\n{body}\n}}\n"

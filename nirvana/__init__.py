"""Nirvana: an open database of winning lottery tickets.

What users import: :class:`nirvana.Client` (the HTTP client) and the exceptions in
:mod:`nirvana.errors`. The ``nirvana`` command line lives in :mod:`nirvana.cli`.
Importing this package imports neither torch nor the server.
"""

from __future__ import annotations

from nirvana.client import Client
from nirvana.errors import NirvanaError

__all__ = ["Client", "NirvanaError", "__version__"]

__version__ = "0.1.0"

"""Every model, imported so that ``metadata`` is complete (Alembic reads it)."""

# Each model is imported from its own module (db.models.tickets, ...); this package
# only imports every one of them, so that their tables are in ``metadata``.
from db.base import Base
from db.models import blobs, ratelimits, tickets, users, verifications

#: The modules whose tables make ``metadata``.
MODEL_MODULES = (blobs, ratelimits, tickets, users, verifications)

#: The schema of every table: import it from here, never from ``db.base``, so that no
#: model can be missing from it.
metadata = Base.metadata

__all__ = ["metadata"]

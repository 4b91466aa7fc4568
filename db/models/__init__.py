"""Every model, imported so that ``metadata`` is complete (Alembic reads it)."""

from db.base import Base
from db.models.blobs import Blob
from db.models.ratelimits import RateLimitBucket
from db.models.tickets import Ticket
from db.models.users import ApiToken, User
from db.models.verifications import Verification, VerificationState

#: The schema of every table: import it from here, never from ``db.base``, so that no
#: model can be missing from it.
metadata = Base.metadata

__all__ = ["ApiToken", "Blob", "RateLimitBucket", "Ticket", "User", "Verification", "VerificationState", "metadata"]

"""Every model, imported so that ``Base.metadata`` is complete (Alembic reads it)."""

from db.models.blobs import Blob
from db.models.tickets import Ticket
from db.models.users import ApiToken, User
from db.models.verifications import Verification, VerificationState

__all__ = ["ApiToken", "Blob", "Ticket", "User", "Verification", "VerificationState"]

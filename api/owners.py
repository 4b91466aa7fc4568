"""Who may act on a verification: its ticket's uploader, the user who queued it, and
tokens with the ``admin`` scope. Everyone else gets ``403 not_owner``."""

from __future__ import annotations

import uuid

from api.errors import ProblemError
from db.models.users import ApiToken


def ensure_owner(token: ApiToken, *, uploader_id: uuid.UUID, requested_by_id: uuid.UUID | None = None, action: str) -> None:
    """Raise ``ProblemError(403, "not_owner")`` unless ``token`` belongs to the ticket's
    uploader or to the user who queued the verification, or carries ``admin``."""
    if token.is_admin or token.user_id in (uploader_id, requested_by_id):
        return
    raise ProblemError(
        403, "not_owner", f"only the ticket's uploader, whoever queued the verification or an admin may {action}"
    )

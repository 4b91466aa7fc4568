"""verifications.requested_by_id: who queued a verification (they may cancel it)

Revision ID: f7a0c3e1d5b2
Revises: 5f0a6c1e9d42
Create Date: 2026-12-01 14:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'f7a0c3e1d5b2'
down_revision: str | None = '5f0a6c1e9d42'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('verifications', sa.Column('requested_by_id', sa.Uuid(), nullable=True))
    op.create_foreign_key(
        op.f('fk_verifications_requested_by_id_users'), 'verifications', 'users',
        ['requested_by_id'], ['id'], ondelete='SET NULL',
    )
    # The verifications queued at upload were the uploader's; who queued an older
    # transfer evaluation is not known (its ticket's uploader and admins still may cancel it).
    op.execute(
        """
        UPDATE verifications AS v SET requested_by_id = t.submitter_id
        FROM tickets AS t WHERE v.ticket_id = t.id AND v.task = t.task
        """
    )


def downgrade() -> None:
    op.drop_constraint(op.f('fk_verifications_requested_by_id_users'), 'verifications', type_='foreignkey')
    op.drop_column('verifications', 'requested_by_id')

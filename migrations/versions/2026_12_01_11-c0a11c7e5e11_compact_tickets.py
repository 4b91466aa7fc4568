"""compact tickets: packed mask and kept init blobs, footprint, parameters_kept

Revision ID: c0a11c7e5e11
Revises: f7a0c3e1d5b2
Create Date: 2026-12-01 14:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = 'c0a11c7e5e11'
down_revision: str | None = 'f7a0c3e1d5b2'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('tickets', sa.Column('mask_packed_sha256', sa.String(length=64), nullable=True))
    op.add_column('tickets', sa.Column('init_kept_sha256', sa.String(length=64), nullable=True))
    op.add_column('tickets', sa.Column('init_kept_digest', sa.String(length=64), nullable=True))
    op.add_column('tickets', sa.Column('footprint', postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.add_column('tickets', sa.Column('parameters_kept', sa.BigInteger(), nullable=True))
    op.create_foreign_key(op.f('fk_tickets_mask_packed_sha256_blobs'), 'tickets', 'blobs', ['mask_packed_sha256'], ['sha256'])
    op.create_foreign_key(op.f('fk_tickets_init_kept_sha256_blobs'), 'tickets', 'blobs', ['init_kept_sha256'], ['sha256'])
    op.create_check_constraint(
        op.f('ck_tickets_init_kept_digest_hex'), 'tickets', "init_kept_digest IS NULL OR init_kept_digest ~ '^[0-9a-f]{64}$'"
    )
    op.create_index('ix_tickets_task_parameters_kept', 'tickets', ['task', 'parameters_kept'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_tickets_task_parameters_kept', table_name='tickets')
    op.drop_constraint(op.f('ck_tickets_init_kept_digest_hex'), 'tickets', type_='check')
    op.drop_constraint(op.f('fk_tickets_init_kept_sha256_blobs'), 'tickets', type_='foreignkey')
    op.drop_constraint(op.f('fk_tickets_mask_packed_sha256_blobs'), 'tickets', type_='foreignkey')
    op.drop_column('tickets', 'parameters_kept')
    op.drop_column('tickets', 'footprint')
    op.drop_column('tickets', 'init_kept_digest')
    op.drop_column('tickets', 'init_kept_sha256')
    op.drop_column('tickets', 'mask_packed_sha256')

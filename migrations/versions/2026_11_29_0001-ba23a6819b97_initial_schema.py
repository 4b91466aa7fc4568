"""initial schema

Revision ID: ba23a6819b97
Revises: 
Create Date: 2026-11-29 00:23:28.654625
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = 'ba23a6819b97'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('blobs',
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('media_type', sa.String(length=100), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("sha256 ~ '^[0-9a-f]{64}$'", name=op.f('ck_blobs_sha256_hex')),
    sa.CheckConstraint('size >= 0', name=op.f('ck_blobs_size_nonnegative')),
    sa.PrimaryKeyConstraint('sha256', name=op.f('pk_blobs'))
    )
    op.create_table('users',
    sa.Column('id', sa.Uuid(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('name', name=op.f('uq_users_name'))
    )
    op.create_table('api_tokens',
    sa.Column('id', sa.Uuid(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('scopes', sa.ARRAY(sa.Text()), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("token_hash ~ '^[0-9a-f]{64}$'", name=op.f('ck_api_tokens_token_hash_hex')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_api_tokens_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_tokens_token_hash'))
    )
    op.create_index(op.f('ix_api_tokens_user_id'), 'api_tokens', ['user_id'], unique=False)
    op.create_table('tickets',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('architecture', sa.String(length=100), nullable=False),
    sa.Column('task', sa.String(length=100), nullable=False),
    sa.Column('init_scheme', sa.String(length=50), nullable=False),
    sa.Column('seed', sa.BigInteger(), nullable=True),
    sa.Column('rewind_step', sa.Integer(), nullable=False),
    sa.Column('init_digest', sa.String(length=64), nullable=False),
    sa.Column('mask_digest', sa.String(length=64), nullable=False),
    sa.Column('mask_sha256', sa.String(length=64), nullable=False),
    sa.Column('init_sha256', sa.String(length=64), nullable=False),
    sa.Column('manifest', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('recipe', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('claimed_accuracy', sa.Float(), nullable=False),
    sa.Column('method', sa.String(length=50), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), server_default='', nullable=False),
    sa.Column('tags', sa.ARRAY(sa.Text()), server_default='{}', nullable=False),
    sa.Column('license', sa.String(length=50), nullable=False),
    sa.Column('parent_id', sa.String(length=64), nullable=True),
    sa.Column('density', sa.Float(), nullable=False),
    sa.Column('remaining', sa.BigInteger(), nullable=False),
    sa.Column('prunable', sa.BigInteger(), nullable=False),
    sa.Column('layers', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('accuracy', sa.Float(), nullable=False),
    sa.Column('verified', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('verified_accuracy', sa.Float(), nullable=True),
    sa.Column('winning', sa.Boolean(), nullable=True),
    sa.Column('submitter_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("id ~ '^[0-9a-f]{64}$'", name=op.f('ck_tickets_id_hex')),
    sa.CheckConstraint("init_digest ~ '^[0-9a-f]{64}$'", name=op.f('ck_tickets_init_digest_hex')),
    sa.CheckConstraint("mask_digest ~ '^[0-9a-f]{64}$'", name=op.f('ck_tickets_mask_digest_hex')),
    sa.CheckConstraint('claimed_accuracy >= 0 AND claimed_accuracy <= 1', name=op.f('ck_tickets_claimed_accuracy_range')),
    sa.CheckConstraint('density > 0 AND density <= 1', name=op.f('ck_tickets_density_range')),
    sa.CheckConstraint('remaining > 0 AND remaining <= prunable', name=op.f('ck_tickets_remaining_range')),
    sa.CheckConstraint('rewind_step >= 0', name=op.f('ck_tickets_rewind_step_nonnegative')),
    sa.ForeignKeyConstraint(['init_sha256'], ['blobs.sha256'], name=op.f('fk_tickets_init_sha256_blobs')),
    sa.ForeignKeyConstraint(['mask_sha256'], ['blobs.sha256'], name=op.f('fk_tickets_mask_sha256_blobs')),
    sa.ForeignKeyConstraint(['submitter_id'], ['users.id'], name=op.f('fk_tickets_submitter_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tickets'))
    )
    op.create_index(op.f('ix_tickets_architecture'), 'tickets', ['architecture'], unique=False)
    op.create_index('ix_tickets_created_at', 'tickets', ['created_at', 'id'], unique=False)
    op.create_index('ix_tickets_tags', 'tickets', ['tags'], unique=False, postgresql_using='gin')
    op.create_index('ix_tickets_task_accuracy', 'tickets', ['task', 'accuracy', 'id'], unique=False)
    op.create_index('ix_tickets_task_density', 'tickets', ['task', 'density', 'id'], unique=False)
    op.create_table('verifications',
    sa.Column('id', sa.Uuid(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('ticket_id', sa.String(length=64), nullable=False),
    sa.Column('task', sa.String(length=100), nullable=False),
    sa.Column('recipe', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('claimed_accuracy', sa.Float(), nullable=False),
    sa.Column('state', sa.String(length=16), server_default='queued', nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('max_attempts', sa.Integer(), server_default='3', nullable=False),
    sa.Column('progress', sa.Float(), server_default='0', nullable=False),
    sa.Column('cancel_requested', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('lease_token', sa.Uuid(), nullable=True),
    sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('worker_id', sa.String(length=200), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('result', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')", name=op.f('ck_verifications_state_known')),
    sa.CheckConstraint('attempts >= 0 AND attempts <= max_attempts', name=op.f('ck_verifications_attempts_range')),
    sa.CheckConstraint('progress >= 0 AND progress <= 1', name=op.f('ck_verifications_progress_range')),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_verifications_ticket_id_tickets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_verifications'))
    )
    op.create_index('ix_verifications_queued', 'verifications', ['created_at'], unique=False, postgresql_where=sa.text("state = 'queued'"))
    op.create_index('ix_verifications_running_lease', 'verifications', ['lease_expires_at'], unique=False, postgresql_where=sa.text("state = 'running'"))
    op.create_index(op.f('ix_verifications_ticket_id'), 'verifications', ['ticket_id'], unique=False)

    # Wake idle workers (LISTEN nirvana_verifications) when a job becomes queued;
    # they also poll, so a lost notification only costs latency.
    op.execute(
        """
        CREATE FUNCTION notify_verification_queued() RETURNS trigger AS $$
        BEGIN
            PERFORM pg_notify('nirvana_verifications', NEW.id::text);
            RETURN NEW;
        END
        $$ LANGUAGE plpgsql
        """
    )
    op.execute(
        """
        CREATE TRIGGER verifications_notify_queued
        AFTER INSERT OR UPDATE OF state ON verifications
        FOR EACH ROW WHEN (NEW.state = 'queued')
        EXECUTE FUNCTION notify_verification_queued()
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS verifications_notify_queued ON verifications")
    op.execute("DROP FUNCTION IF EXISTS notify_verification_queued()")
    op.drop_index(op.f('ix_verifications_ticket_id'), table_name='verifications')
    op.drop_index('ix_verifications_running_lease', table_name='verifications', postgresql_where=sa.text("state = 'running'"))
    op.drop_index('ix_verifications_queued', table_name='verifications', postgresql_where=sa.text("state = 'queued'"))
    op.drop_table('verifications')
    op.drop_index('ix_tickets_task_density', table_name='tickets')
    op.drop_index('ix_tickets_task_accuracy', table_name='tickets')
    op.drop_index('ix_tickets_tags', table_name='tickets', postgresql_using='gin')
    op.drop_index('ix_tickets_created_at', table_name='tickets')
    op.drop_index(op.f('ix_tickets_architecture'), table_name='tickets')
    op.drop_table('tickets')
    op.drop_index(op.f('ix_api_tokens_user_id'), table_name='api_tokens')
    op.drop_table('api_tokens')
    op.drop_table('users')
    op.drop_table('blobs')

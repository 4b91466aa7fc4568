"""throughput: -created indexes within a task and an architecture; shared rate limits

Revision ID: 5f0a6c1e9d42
Revises: ba23a6819b97
Create Date: 2026-12-01 14:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5f0a6c1e9d42"
down_revision: str | None = "ba23a6819b97"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_tickets_task_created_at", "tickets", ["task", "created_at", "id"])
    op.create_index("ix_tickets_architecture_created_at", "tickets", ["architecture", "created_at", "id"])
    op.create_table(
        "rate_limit_buckets",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_rate_limit_buckets")),
        prefixes=["UNLOGGED"],
    )


def downgrade() -> None:
    op.drop_table("rate_limit_buckets")
    op.drop_index("ix_tickets_architecture_created_at", table_name="tickets")
    op.drop_index("ix_tickets_task_created_at", table_name="tickets")

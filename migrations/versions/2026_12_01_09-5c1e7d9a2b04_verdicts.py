"""verdicts: tickets.verdict and tickets.dense_accuracy, schema-1 results marked

Revision ID: 5c1e7d9a2b04
Revises: ba23a6819b97
Create Date: 2026-12-01 14:50:00

Every row stays. ``tickets.verdict`` is filled from what the ticket already records
(a succeeded own-task verification sets ``verified_accuracy``): ``not_reproduced``
when not verified, else ``winning`` or ``not_winning``; NULL (pending) otherwise.
``tickets.dense_accuracy`` from the dense run of the latest succeeded verification on
the ticket's own task.
Stored results written before result schema 2 get ``"schema": 1``.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5c1e7d9a2b04"
down_revision: str | None = "ba23a6819b97"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("tickets", sa.Column("verdict", sa.String(length=20), nullable=True))
    op.add_column("tickets", sa.Column("dense_accuracy", sa.Float(), nullable=True))
    op.create_check_constraint(
        op.f("ck_tickets_verdict_known"),
        "tickets",
        "verdict IS NULL OR verdict IN ('winning', 'not_winning', 'not_reproduced')",
    )
    op.execute(
        "UPDATE tickets SET verdict = CASE WHEN NOT verified THEN 'not_reproduced' "
        "WHEN winning THEN 'winning' ELSE 'not_winning' END "
        "WHERE verified_accuracy IS NOT NULL"
    )
    op.execute(
        "UPDATE tickets t SET dense_accuracy = ("
        " SELECT (v.result->'runs'->'dense'->>'test_accuracy')::float FROM verifications v"
        " WHERE v.ticket_id = t.id AND v.task = t.task AND v.state = 'succeeded' AND v.result IS NOT NULL"
        " ORDER BY v.finished_at DESC NULLS LAST LIMIT 1)"
    )
    op.execute(
        "UPDATE verifications SET result = result || '{\"schema\": 1}'::jsonb "
        "WHERE result IS NOT NULL AND jsonb_typeof(result) = 'object' AND NOT result ? 'schema'"
    )


def downgrade() -> None:
    op.execute(
        "UPDATE verifications SET result = result - 'schema' "
        "WHERE result IS NOT NULL AND jsonb_typeof(result) = 'object' AND result->>'schema' = '1'"
    )
    op.drop_constraint(op.f("ck_tickets_verdict_known"), "tickets", type_="check")
    op.drop_column("tickets", "dense_accuracy")
    op.drop_column("tickets", "verdict")

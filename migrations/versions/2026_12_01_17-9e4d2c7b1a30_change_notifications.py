"""change notifications: NOTIFY nirvana_changes on writes that public reads show

Revision ID: 9e4d2c7b1a30
Revises: 5c1e7d9a2b04
Create Date: 2026-12-01 17:30:00

One notification per statement (and, PostgreSQL folding equal payloads, per
transaction and table) that writes what an anonymous GET of the API can show: tickets,
the verifications' visible columns (a heartbeat notifies: it moves ``progress``; a
write of only the lease or the worker's id does not) and users' names. The API's read cache (``api.readcache``) listens and
forgets everything it holds. Sent at commit, never for a rolled-back write.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "9e4d2c7b1a30"
down_revision: str | None = "5c1e7d9a2b04"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHANNEL = "nirvana_changes"
VISIBLE_VERIFICATION_COLUMNS = (
    "ticket_id, task, state, progress, attempts, max_attempts, cancel_requested, recipe, claimed_accuracy, "
    "result, error, created_at, started_at, finished_at"
)
TRIGGERS = {
    "tickets": "AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE",
    "verifications": f"AFTER INSERT OR DELETE OR TRUNCATE OR UPDATE OF {VISIBLE_VERIFICATION_COLUMNS}",
    "users": "AFTER UPDATE OF name OR DELETE",
}


def upgrade() -> None:
    op.execute(
        f"""
        CREATE FUNCTION notify_public_change() RETURNS trigger AS $$
        BEGIN
            PERFORM pg_notify('{CHANNEL}', TG_TABLE_NAME);
            RETURN NULL;
        END;
        $$ LANGUAGE plpgsql
        """
    )
    for table, events in TRIGGERS.items():
        op.execute(
            f"CREATE TRIGGER {table}_notify_change {events} ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION notify_public_change()"
        )


def downgrade() -> None:
    for table in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_notify_change ON {table}")
    op.execute("DROP FUNCTION IF EXISTS notify_public_change()")

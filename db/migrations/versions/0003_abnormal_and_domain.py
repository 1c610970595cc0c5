"""per-study abnormal score and out-of-domain gate result; the worker's last error; audit rows cannot be replaced or truncated

Revision ID: 0003
Revises: 0002
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: Union[str, Sequence[str], None] = "0002"
branch_labels = None
depends_on = None


SQLITE_NO_REPLACE = (
    # INSERT OR REPLACE deletes the old row without firing DELETE triggers (unless
    # recursive_triggers is on): refuse any insert that reuses an existing id
    "CREATE TRIGGER audit_log_no_replace BEFORE INSERT ON audit_log "
    "WHEN EXISTS (SELECT 1 FROM audit_log WHERE id = NEW.id) "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"
)
POSTGRES_NO_TRUNCATE = (
    "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()"
)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute(SQLITE_NO_REPLACE)
    elif dialect == "postgresql":
        op.execute(POSTGRES_NO_TRUNCATE)
    with op.batch_alter_table("studies") as batch:
        batch.add_column(sa.Column("abnormal", sa.Float(), nullable=True))
        batch.add_column(sa.Column("in_domain", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("domain_score", sa.Float(), nullable=True))
    with op.batch_alter_table("worker_heartbeats") as batch:
        batch.add_column(sa.Column("last_error", sa.String(length=500), nullable=True))


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_replace")
    elif dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log")
    with op.batch_alter_table("worker_heartbeats") as batch:
        batch.drop_column("last_error")
    with op.batch_alter_table("studies") as batch:
        batch.drop_column("domain_score")
        batch.drop_column("in_domain")
        batch.drop_column("abnormal")

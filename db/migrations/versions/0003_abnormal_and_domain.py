"""per-study abnormal score and out-of-domain gate result; the worker's last error

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


def upgrade() -> None:
    with op.batch_alter_table("studies") as batch:
        batch.add_column(sa.Column("abnormal", sa.Float(), nullable=True))
        batch.add_column(sa.Column("in_domain", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("domain_score", sa.Float(), nullable=True))
    with op.batch_alter_table("worker_heartbeats") as batch:
        batch.add_column(sa.Column("last_error", sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("worker_heartbeats") as batch:
        batch.drop_column("last_error")
    with op.batch_alter_table("studies") as batch:
        batch.drop_column("domain_score")
        batch.drop_column("in_domain")
        batch.drop_column("abnormal")

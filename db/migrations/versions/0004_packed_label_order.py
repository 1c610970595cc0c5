"""packed rows record the label order they were written with

Rows written before this revision were packed in the 15 NIH labels' order, which is what
the backfill records for them.

Revision ID: 0004
Revises: 0003
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: Union[str, Sequence[str], None] = "0003"
branch_labels = None
depends_on = None

NIH_ORDER = "|".join(
    (
        "Atelectasis",
        "Cardiomegaly",
        "Consolidation",
        "Edema",
        "Effusion",
        "Emphysema",
        "Fibrosis",
        "Hernia",
        "Infiltration",
        "Mass",
        "Nodule",
        "Pleural_Thickening",
        "Pneumonia",
        "Pneumothorax",
        "No Finding",
    )
)


def upgrade() -> None:
    for table in ("study_scores", "verdict_sets"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("labels", sa.Text(), nullable=True))
        op.execute(sa.text(f"UPDATE {table} SET labels = :order WHERE labels IS NULL").bindparams(order=NIH_ORDER))
        with op.batch_alter_table(table) as batch:
            batch.alter_column("labels", existing_type=sa.Text(), nullable=False)


def downgrade() -> None:
    for table in ("study_scores", "verdict_sets"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("labels")

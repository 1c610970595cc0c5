"""image_features: the pooled trunk features of every analysed image (identity view,
float16) with the model version, so a head can be refitted on the site's reads without
reading or decoding an image again

Revision ID: 0009
Revises: 0008
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: Union[str, Sequence[str], None] = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "image_features",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("instance_id", sa.Integer(), sa.ForeignKey("instances.id", ondelete="CASCADE"), nullable=False),
        sa.Column("study_id", sa.Integer(), sa.ForeignKey("studies.id", ondelete="CASCADE"), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("features", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=True),
        sa.UniqueConstraint("instance_id", "model_version", name="uq_image_features"),
    )
    op.create_index("ix_image_features_version", "image_features", ["model_version", "study_id"])


def downgrade() -> None:
    op.drop_index("ix_image_features_version", table_name="image_features")
    op.drop_table("image_features")

"""studies group DICOM instances: instances table, study identifiers, analysis not before
a quiet period, heatmap source image, and the outbound queue of results for the PACS

Every study stored before this revision was one file: it gets one instance row.

Revision ID: 0005
Revises: 0004
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: Union[str, Sequence[str], None] = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("studies") as batch:
        batch.add_column(sa.Column("study_instance_uid", sa.String(64), nullable=True))
        batch.add_column(sa.Column("accession_number", sa.String(16), nullable=True))
        batch.add_column(sa.Column("study_date", sa.String(8), nullable=True))
        batch.add_column(sa.Column("ready_at", sa.DateTime(), nullable=True))
        batch.create_index("ix_studies_uid", ["study_instance_uid"], unique=True)
    op.create_table(
        "instances",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("study_id", sa.Integer(), sa.ForeignKey("studies.id", ondelete="CASCADE"), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("sop_instance_uid", sa.String(64), nullable=True, unique=True),
        sa.Column("series_instance_uid", sa.String(64), nullable=True),
        sa.Column("sop_class_uid", sa.String(64), nullable=True),
        sa.Column("stored_path", sa.String(256), nullable=False),
        sa.Column("file_format", sa.String(16), nullable=False),
        sa.Column("view_position", sa.String(16), nullable=True),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("analysed", sa.Boolean(), nullable=False),
        sa.Column("not_analysed_reason", sa.String(200), nullable=True),
        sa.Column("source", sa.String(80), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_instances_study", "instances", ["study_id"])
    op.execute(
        "INSERT INTO instances (study_id, sha256, stored_path, file_format, view_position, width, height, analysed,"
        " source, created_at) SELECT id, sha256, stored_path, file_format, view_position, width, height,"
        " (1 = 1), 'upload', created_at FROM studies"
    )
    with op.batch_alter_table("heatmaps") as batch:
        batch.add_column(sa.Column("instance_id", sa.Integer(), nullable=True))
    op.create_table(
        "outbound",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("study_id", sa.Integer(), sa.ForeignKey("studies.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("sop_instance_uid", sa.String(64), nullable=False, unique=True),
        sa.Column("sop_class_uid", sa.String(64), nullable=False),
        sa.Column("path", sa.String(256), nullable=False),
        sa.Column("destination", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_outbound_due", "outbound", ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_outbound_due", table_name="outbound")
    op.drop_table("outbound")
    with op.batch_alter_table("heatmaps") as batch:
        batch.drop_column("instance_id")
    op.drop_index("ix_instances_study", table_name="instances")
    op.drop_table("instances")
    with op.batch_alter_table("studies") as batch:
        batch.drop_index("ix_studies_uid")
        for column in ("ready_at", "study_date", "accession_number", "study_instance_uid"):
            batch.drop_column(column)

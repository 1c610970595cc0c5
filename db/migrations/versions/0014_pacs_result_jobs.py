"""pacs_result_jobs: the durable outbox between the worker and the PACS service. The worker
records, in the transaction that stores a DICOM study's results, that its SR and overlays
are to be built; the PACS service claims each job, builds and queues the objects for
C-STORE, and marks it done (results used to be built inside the worker after the store).

Revision ID: 0014
Revises: 0013
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: Union[str, Sequence[str], None] = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pacs_result_jobs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("study_id", sa.Integer(), sa.ForeignKey("studies.id", ondelete="CASCADE"), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("claimed_by", sa.String(100)),
        sa.Column("claim_expires_at", sa.DateTime()),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_error", sa.String(500)),
        sa.Column("done_at", sa.DateTime()),
    )
    op.create_index("ix_pacs_result_jobs_open", "pacs_result_jobs", ["done_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_pacs_result_jobs_open", table_name="pacs_result_jobs")
    op.drop_table("pacs_result_jobs")

"""site_settings: facts about the site that every process must agree on, whatever its own
environment. The first is the PACS destination: the PACS service records it when it
starts, and a worker started without CXR_DICOM_DESTINATION still records a DICOM study's
result job (it recorded none before, and that study's results never reached the PACS).

Revision ID: 0015
Revises: 0014
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: Union[str, Sequence[str], None] = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "site_settings",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(500), nullable=False),
        sa.Column("updated_by", sa.String(100), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("site_settings")

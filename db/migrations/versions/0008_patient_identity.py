"""studies record a keyed digest of their patient's identity, so that an instance of
another patient is refused instead of joining the study; heatmaps get their image where
it is certain; outbound results get a retry deadline

Revision ID: 0008
Revises: 0007
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: Union[str, Sequence[str], None] = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # results for the PACS are retried until this time (24 h after queueing or a resend)
    with op.batch_alter_table("outbound") as batch:
        batch.add_column(sa.Column("retry_until", sa.DateTime(), nullable=True))
    with op.batch_alter_table("studies") as batch:
        batch.add_column(sa.Column("patient_identity", sa.String(64), nullable=True))
    # heatmaps were stored without their image (db.results never wrote it); where the study
    # has one analysed image that image is certainly the map's, elsewhere it stays unknown
    # and no overlay is drawn for it (services.pacs.results)
    op.execute(
        """
        UPDATE heatmaps SET instance_id = (
            SELECT min(i.id) FROM instances i WHERE i.study_id = heatmaps.study_id AND i.analysed)
        WHERE instance_id IS NULL AND (
            SELECT count(*) FROM instances i WHERE i.study_id = heatmaps.study_id AND i.analysed) = 1
        """
    )


def downgrade() -> None:
    with op.batch_alter_table("outbound") as batch:
        batch.drop_column("retry_until")
    with op.batch_alter_table("studies") as batch:
        batch.drop_column("patient_identity")

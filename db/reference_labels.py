"""Imported ground truth (NIH format): upsert by image name, and the studies it matches."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from db import audit
from db.schema import ReferenceLabel
from db.session import run_write
from db.studies import apply_reference_demographics


@dataclass(frozen=True)
class ReferenceRow:
    image_index: str
    finding_labels: str
    patient_id: str | None = None
    view_position: str | None = None
    patient_age: int | None = None
    patient_sex: str | None = None


@dataclass(frozen=True)
class ImportCounts:
    added: int
    updated: int
    matched_studies: int


def upsert_reference_labels(
    engine: Engine, rows: list[ReferenceRow], source: str, actor: str, matched_studies: int
) -> ImportCounts:
    """Insert or update every row, copy patient keys and demographics onto the matching
    studies, and audit the import under ``source`` (the file's name as uploaded), in one
    transaction."""

    def work(session: Session) -> ImportCounts:
        existing = {r.image_index: r for r in session.execute(select(ReferenceLabel)).scalars()}
        added = updated = 0
        for row in rows:
            rec = existing.get(row.image_index)
            if rec is None:
                session.add(
                    ReferenceLabel(
                        image_index=row.image_index,
                        finding_labels=row.finding_labels,
                        patient_id=row.patient_id,
                        view_position=row.view_position,
                        patient_age=row.patient_age,
                        patient_sex=row.patient_sex,
                        source=source,
                    )
                )
                added += 1
            else:
                rec.finding_labels, rec.patient_id, rec.source = row.finding_labels, row.patient_id, source
                updated += 1
            apply_reference_demographics(
                session, row.image_index, row.patient_id, row.view_position, row.patient_age, row.patient_sex
            )
        audit.record(session, "reference_labels_imported", actor, None, source=source, added=added, updated=updated)
        return ImportCounts(added, updated, matched_studies)

    return run_write(engine, work)

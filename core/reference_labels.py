"""Import reference labels (NIH format) and match them to studies by file name.

``python -m core.labels import CSV`` (or ``python -m core.reference_labels import CSV``) — the table's ``Image Index`` is matched
to each study's original file name; ``Patient ID`` becomes the study's pseudonymous
patient key, so bootstrap CIs resample whole patients.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sqlalchemy import Engine, select, update

from core.labels import parse_finding_labels, read_label_table
from db import audit
from db.schema import ReferenceLabel, Study
from db.session import run_write


def import_labels(engine: Engine, csv_path: str | Path, actor: str = "cli", only_matching: bool = True) -> dict:
    """Upsert rows; with ``only_matching`` only rows whose image is among the studies."""
    table = read_label_table(csv_path)
    with engine.connect() as conn:
        names = set(conn.execute(select(Study.original_name)).scalars())
    if only_matching:
        table = table[table["Image Index"].isin(names)]
    bad = []
    for text in table["Finding Labels"]:
        try:
            parse_finding_labels(text)
        except ValueError as exc:
            bad.append(str(exc))
    if bad:
        raise ValueError(f"{len(bad)} rows have unknown labels, e.g. {bad[0]}")

    def work(session) -> dict:
        existing = {r.image_index: r for r in session.execute(select(ReferenceLabel)).scalars()}
        added = updated = 0
        for row in table.to_dict("records"):
            name, labels = str(row["Image Index"]), str(row["Finding Labels"])
            pid = str(row["Patient ID"]) if "Patient ID" in row else None
            view = str(row["View Position"]) if "View Position" in row else None
            age = int(row["Patient Age"]) if "Patient Age" in row else None
            sex = str(row["Patient Gender"]) if "Patient Gender" in row else None
            rec = existing.get(name)
            if rec is None:
                session.add(ReferenceLabel(image_index=name, finding_labels=labels, patient_id=pid, view_position=view,
                                           patient_age=age, patient_sex=sex, source=Path(csv_path).name))
                added += 1
            else:
                rec.finding_labels, rec.patient_id, rec.source = labels, pid, Path(csv_path).name
                updated += 1
            if pid is not None:
                session.execute(update(Study).where(Study.original_name == name).values(patient_key=pid))
            if view is not None:
                session.execute(update(Study).where(Study.original_name == name, Study.view_position.is_(None))
                                .values(view_position=view, patient_age=age, patient_sex=sex))
        audit.record(session, "reference_labels_imported", actor, None, source=Path(csv_path).name,
                     added=added, updated=updated)
        return {"added": added, "updated": updated, "matched_studies": int(table["Image Index"].isin(names).sum())}

    return run_write(engine, work)


def main(argv: list[str] | None = None) -> int:
    from core.config import load_settings
    from db.bootstrap import open_database

    parser = argparse.ArgumentParser(prog="python -m core.labels")
    sub = parser.add_subparsers(dest="cmd", required=True)
    imp = sub.add_parser("import")
    imp.add_argument("csv", type=Path)
    imp.add_argument("--all", action="store_true", help="also rows for images not uploaded yet")
    args = parser.parse_args(argv)
    engine = open_database(load_settings())
    try:
        result = import_labels(engine, args.csv, only_matching=not args.all)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{result['added']} added, {result['updated']} updated, {result['matched_studies']} studies matched")
    return 0


if __name__ == "__main__":
    sys.exit(main())

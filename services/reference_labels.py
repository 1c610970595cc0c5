"""Import reference labels (NIH format) and match them to studies by file name.

``cxr labels import CSV`` (the documented command) — the table's ``Image Index``
is matched to each study's original file name; ``Patient ID`` becomes the study's
pseudonymous patient key, so bootstrap CIs resample whole patients.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine

from core.config import load_settings
from core.labels import parse_finding_labels, read_label_table
from db.bootstrap import open_database
from db.reference_labels import ImportCounts, ReferenceRow, upsert_reference_labels
from db.studies import original_names


def _optional(row: dict, column: str, kind: type):
    value = row.get(column)
    return None if value is None or pd.isna(value) else kind(value)


def import_labels(
    engine: Engine, csv_path: str | Path, actor: str = "cli", only_matching: bool = True, source_name: str | None = None
) -> ImportCounts:
    """Upsert rows; with ``only_matching`` only rows whose image is among the studies.
    ``source_name`` is the name the file was uploaded under (recorded and audited)."""
    table = read_label_table(csv_path)
    names = original_names(engine)
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
    rows = [
        ReferenceRow(
            str(r["Image Index"]),
            str(r["Finding Labels"]),
            _optional(r, "Patient ID", str),
            _optional(r, "View Position", str),
            _optional(r, "Patient Age", int),
            _optional(r, "Patient Gender", str),
        )
        for r in table.to_dict("records")
    ]
    source = (source_name or Path(csv_path).name)[:256]
    return upsert_reference_labels(engine, rows, source, actor, int(table["Image Index"].isin(names).sum()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cxr labels")
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
    print(f"{result.added} added, {result.updated} updated, {result.matched_studies} studies matched")
    return 0

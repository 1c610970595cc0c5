"""``cxr outbox list [--json]`` and ``cxr outbox resend (--all | ID...)``: results for the
PACS that have failed at least once (retrying, or failed for good after 24 h).
``cxr outbox destination [--clear]``: where the site's results go, or stop sending them."""

from __future__ import annotations

import argparse
import json
import sys

from sqlalchemy import Engine

from core.config import load_settings
from db.bootstrap import open_database
from services.pacs.outbox import failing_results, resend_results, site_destination, stop_sending_results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cxr outbox", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    listing = sub.add_parser("list", help="failed and retrying results, with reason and attempts")
    listing.add_argument("--json", action="store_true")
    again = sub.add_parser("resend", help="queue results again now (a new 24 h retry window)")
    again.add_argument("ids", nargs="*", type=int)
    again.add_argument("--all", action="store_true")
    where = sub.add_parser("destination", help="the PACS destination a PACS service recorded for the site")
    where.add_argument(
        "--clear", action="store_true", help="stop sending results: forget it and close the result jobs still open"
    )
    args = parser.parse_args(argv)
    engine = open_database(load_settings())
    if args.cmd == "destination":
        return _destination(engine, args.clear)
    if args.cmd == "list":
        rows = failing_results(engine)
        if args.json:
            print(json.dumps([row.as_dict() for row in rows], indent=1))
        else:
            for row in rows:
                print(f"{row.id}\tstudy {row.study_id}\t{row.kind}\t{row.status}\t{row.attempts} attempts\t{row.error}")
            print(f"{len(rows)} result(s) not delivered")
        return 0
    if not args.all and not args.ids:
        print("error: name result ids or --all", file=sys.stderr)
        return 2
    count = resend_results(engine, None if args.all else args.ids, actor="cli")
    print(f"{count} result(s) queued again")
    return 0


def _destination(engine: Engine, clear: bool) -> int:
    if not clear:
        found = site_destination(engine)
        print(found if found else "no PACS destination recorded: DICOM results stay here")
        return 0
    removed, closed = stop_sending_results(engine, actor="cli")
    print(f"forgot {removed}" if removed else "no PACS destination was recorded")
    print(f"{closed} open result job(s) closed with nothing to send")
    print("a PACS service started again with CXR_DICOM_DESTINATION records its destination again")
    return 0

"""Consistent copy of the SQLite database while the app runs, and a restore that cannot
destroy what it replaces.

``cxr backup [DEST]`` writes ``DEST`` (default: data/backups/cxr-<UTC time>.sqlite3)
with SQLite's ``VACUUM INTO``: one read transaction copies a consistent snapshot in a
single step, so writers committing every few milliseconds cannot starve it (the page-by-
page backup API restarts on every write). Restore: stop the app and workers, then
``cxr backup --restore BACKUP``; the file is refused unless it is an intact
database of this application, and the database it replaces is kept beside it.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import make_url

SQLITE_HEADER = b"SQLite format 3\x00"
REQUIRED_TABLES = {"alembic_version", "studies", "audit_log", "users"}


class BackupError(RuntimeError):
    """A backup or restore that was refused; the message says why."""


def sqlite_path(url: str) -> Path:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        raise BackupError("online backup is for the SQLite default; use pg_dump for PostgreSQL")
    return Path(parsed.database)


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """Open an existing file read-only through a percent-encoded URI (never creates one)."""
    if not path.is_file():
        raise BackupError(f"{path} does not exist")
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)


def backup(url: str, dest: Path) -> Path:
    source = sqlite_path(url)
    if dest.exists():
        raise BackupError(f"{dest} exists already; a backup never overwrites a file")
    dest.parent.mkdir(parents=True, exist_ok=True)
    src = _connect_read_only(source)
    try:
        src.execute("VACUUM INTO ?", (str(dest),))
    finally:
        src.close()
    check_database(dest)
    return dest


def check_database(path: Path) -> None:
    """Refuse anything that is not an intact database of this application."""
    if not path.is_file():
        raise BackupError(f"{path} does not exist")
    with open(path, "rb") as fh:
        if fh.read(len(SQLITE_HEADER)) != SQLITE_HEADER:
            raise BackupError(f"{path} is not a SQLite database (empty or another kind of file)")
    conn = _connect_read_only(path)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        missing = REQUIRED_TABLES - tables
        if missing:
            raise BackupError(f"{path} is not a database of this application (no {', '.join(sorted(missing))})")
        if conn.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            raise BackupError(f"{path} is damaged (integrity check failed)")
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path} cannot be read as a database ({exc})") from exc
    finally:
        conn.close()


def restore(url: str, backup_file: Path) -> Path | None:
    """Replace the database with a checked backup (the app and workers must be stopped).

    Returns where the replaced database was kept (None when there was none)."""
    check_database(backup_file)
    target = sqlite_path(url)
    kept = None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    if target.exists():
        # fold the WAL into the file first, so the copy kept aside is complete
        with sqlite3.connect(f"{target.resolve().as_uri()}", uri=True, timeout=30) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        kept = target.with_name(f"{target.name}.replaced-{stamp}")
        target.replace(kept)
    for suffix in ("-wal", "-shm"):
        Path(str(target) + suffix).unlink(missing_ok=True)
    tmp = target.with_name(target.name + ".restoring")
    src = _connect_read_only(backup_file)
    try:
        src.execute("VACUUM INTO ?", (str(tmp),))
    finally:
        src.close()
    tmp.replace(target)
    return kept


def main(argv: list[str] | None = None) -> int:
    from core.config import load_settings

    parser = argparse.ArgumentParser(prog="cxr backup")
    parser.add_argument("dest", nargs="?", type=Path)
    parser.add_argument("--restore", type=Path, help="restore this backup (stop the app and workers first)")
    args = parser.parse_args(argv)
    settings = load_settings()
    try:
        if args.restore:
            kept = restore(settings.database_url, args.restore)
            print(f"restored {args.restore}" + (f"; the replaced database is kept as {kept}" if kept else ""))
            return 0
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        dest = args.dest or settings.data_dir / "backups" / f"cxr-{stamp}.sqlite3"
        print(f"backup written: {backup(settings.database_url, dest)}")
    except BackupError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    return 0

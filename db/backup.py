"""Consistent copy of the SQLite database while the app runs (SQLite online backup).

``python -m db.backup [DEST]`` writes ``DEST`` (default: data/backups/cxr-<UTC time>.sqlite3)
with sqlite3's backup API, which copies a consistent snapshot even while workers and
reviewers write. Restore: stop the app and workers, then copy the backup over the
database file (``python -m db.backup --restore BACKUP``), and start again.
"""
from __future__ import annotations

import argparse
import shutil
import sqlite3
import sys
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy.engine import make_url


def sqlite_path(url: str) -> Path:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        raise ValueError("online backup is for the SQLite default; use pg_dump for PostgreSQL")
    return Path(parsed.database)


def backup(url: str, dest: Path) -> Path:
    source = sqlite_path(url)
    dest.parent.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    out = sqlite3.connect(dest)
    try:
        src.backup(out, pages=1024)
        check = out.execute("PRAGMA integrity_check").fetchone()[0]
        if check != "ok":
            raise RuntimeError(f"backup failed its integrity check: {check}")
    finally:
        out.close()
        src.close()
    return dest


def restore(url: str, backup_file: Path) -> None:
    """Replace the database with a backup. The app and workers must be stopped."""
    target = sqlite_path(url)
    with sqlite3.connect(backup_file) as conn:
        if conn.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            raise RuntimeError("the backup file is damaged")
    for suffix in ("-wal", "-shm"):
        Path(str(target) + suffix).unlink(missing_ok=True)
    tmp = target.with_suffix(".restoring")
    shutil.copyfile(backup_file, tmp)
    tmp.replace(target)


def main(argv: list[str] | None = None) -> int:
    from core.config import load_settings

    parser = argparse.ArgumentParser(prog="python -m db.backup")
    parser.add_argument("dest", nargs="?", type=Path)
    parser.add_argument("--restore", type=Path, help="restore this backup (stop the app and workers first)")
    args = parser.parse_args(argv)
    settings = load_settings()
    if args.restore:
        restore(settings.database_url, args.restore)
        print(f"restored {args.restore}")
        return 0
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    dest = args.dest or settings.data_dir / "backups" / f"cxr-{stamp}.sqlite3"
    print(f"backup written: {backup(settings.database_url, dest)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Which of the project's files run on the two paths readers depend on, recorded at run time.

``python -m bench.trace_paths`` runs, in one process on a fresh data folder and real
radiographs:

- **upload to stored prediction**: the Upload page's call (``services.ingest.ingest_upload``)
  for each image, then one worker batch (``Worker.run_once``) until the results are stored;
- **verdict to ROC**: the Review page's save (``services.reading.save_marked_read``) of one
  read per study, then the Analytics page drawn in Streamlit's ``AppTest`` (cohort, ROC band,
  per-finding table) and the first finding's ROC curves.

A profile hook on every thread records each function call whose code lies in the project
(not tests, not bench, not the virtual environment; an import's module body is not a
call); model loading and sign-up happen before the hook. The files are printed per path,
grouped by layer; ``--json`` prints them as JSON.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("Home.py", "pages", "dashboard", "services", "db", "core", "training", "cli")
SKIPPED = ("tests", "bench", ".venv", "scripts")


def project_file(filename: str) -> str | None:
    """The file's path in the project, or None when it lies outside it or in the skipped parts."""
    try:
        rel = Path(filename).resolve().relative_to(ROOT)
    except ValueError:
        return None
    return None if rel.parts[0] in SKIPPED or rel.suffix != ".py" else rel.as_posix()


@dataclass
class Trace:
    """The project files whose functions ran, and which file called into which."""

    files: set[str] = field(default_factory=set)
    calls: set[tuple[str, str]] = field(default_factory=set)

    @property
    def spine(self) -> set[str]:
        """The files one follows to read the path: those that call into another project
        file (the entry point, the verbs, the queries and the domain steps they chain), not
        the leaves that are only called (schema, session, pixel transforms...)."""
        return {caller for caller, _ in self.calls}


@contextmanager
def recording() -> Iterator[Trace]:
    """Record, on any thread, the project files whose functions are called inside the
    block and the calls from one project file into another."""
    out = Trace()
    seen: dict[str, str | None] = {}

    def mine(code) -> str | None:
        name = code.co_filename
        if name not in seen:
            seen[name] = project_file(name)
        return seen[name]

    def hook(frame, event, _arg) -> None:
        # a function's code has new locals; a module or class body run by an import has not
        if event != "call" or not frame.f_code.co_flags & inspect.CO_NEWLOCALS:
            return
        callee = mine(frame.f_code)
        if not callee:
            return
        out.files.add(callee)
        below = []  # the project files on the stack below this call, nearest first
        back = frame.f_back
        while back is not None and len(below) < 60:
            name = mine(back.f_code)
            if name:
                below.append(name)
            back = back.f_back
        # a call back into a file that is already below (run_write calling the verb's own
        # transaction function) is not a step one follows: the caller handed it over
        if below and below[0] != callee and callee not in below[1:]:
            out.calls.add((below[0], callee))

    threading.setprofile(hook)
    sys.setprofile(hook)
    try:
        yield out
    finally:
        sys.setprofile(None)
        threading.setprofile(None)  # type: ignore[arg-type]


def by_layer(files: set[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in sorted(files):
        layer = next((layer for layer in LAYERS if f == layer or f.startswith(layer + "/")), "other")
        out.setdefault(layer, []).append(f)
    return out


def trace(action: Callable[[], object]) -> Trace:
    with recording() as recorded:
        action()
    return recorded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.trace_paths")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--edges", action="store_true", help="also print which file calls into which")
    parser.add_argument("--studies", type=int, default=6, help="real NIH images uploaded (default 6)")
    args = parser.parse_args(argv)
    from bench.common import bench_settings, require_shared
    from core.runtime import load_analyzer
    from db.bootstrap import open_database
    from db.users import create_user

    shared = require_shared()
    images = sorted((shared / "nih" / "dev512").glob("*.png"))[: args.studies]
    with tempfile.TemporaryDirectory() as tmp:
        settings = bench_settings(Path(tmp) / "data")
        engine = open_database(settings)
        admin = create_user(engine, "trace-admin", "a long enough password", "admin")
        analyzer = load_analyzer(settings.model_dir, settings.tta_views or None, settings.runtime)
        studies: list[int] = []
        paths = {
            "upload to stored prediction": trace(
                lambda: studies.extend(upload_and_analyse(settings, engine, admin, images, analyzer))
            ),
            "verdict to ROC": trace(lambda: read_and_chart(settings, engine, admin, studies)),
        }
        engine.dispose()
    report: dict[str, dict] = {
        name: {"run": by_layer(got.files), "followed": by_layer(got.spine)} for name, got in paths.items()
    }
    if args.edges:
        for name, got in paths.items():
            report[name]["edges"] = sorted(f"{a} -> {b}" for a, b in got.calls)
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    for name, parts in report.items():
        for edge in parts.pop("edges", []):
            print(f"  {name}: {edge}")
        for part, layers in parts.items():
            what = "files whose code runs" if part == "run" else "files one follows (they call into another)"
            print(f"\n{name}, {what}: {sum(map(len, layers.values()))}")
            for layer, files in layers.items():
                print(f"  {layer:<10} {len(files):>2}  {', '.join(Path(f).name for f in files)}")
    return 0


def upload_and_analyse(settings, engine, user, images: list[Path], analyzer) -> list[int]:
    """The studies uploaded, each analysed and stored."""
    from services.ingest import ingest_upload
    from services.worker import Worker

    ids = [
        result.study_id
        for path in images
        for result in ingest_upload(
            engine, settings, path.name, path.read_bytes(), actor=user.username, user_id=user.id
        )
    ]
    worker = Worker(settings, engine, analyzer, worker_id="trace")
    while worker.run_once().claimed:
        pass
    return [i for i in dict.fromkeys(ids) if i is not None]


def read_and_chart(settings, engine, reader, studies: list[int]) -> None:
    """One read per study as the reading screen saves it (Atelectasis marked present on
    every other study, everything else absent), then the Analytics page, whose first tab
    draws the first finding's ROC curve and band."""
    from streamlit.testing.v1 import AppTest

    from dashboard.state import use_settings
    from services.reading import save_marked_read

    for n, study_id in enumerate(studies):
        states = {"Atelectasis": "present" if n % 2 else "absent"}
        outcome = save_marked_read(engine, settings, reader, study_id, states, {}, None)
        if not outcome.saved:
            raise RuntimeError(outcome.message)
    use_settings(settings)
    try:
        page = AppTest.from_file(str(ROOT / "pages" / "analytics.py"), default_timeout=120)
        page.session_state["user_id"] = reader.id
        page.run()
        if page.exception:
            raise RuntimeError(f"the Analytics page failed: {page.exception[0].message}")
    finally:
        use_settings(None)


if __name__ == "__main__":
    raise SystemExit(main())

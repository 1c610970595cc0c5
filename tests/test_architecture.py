"""The layers hold: import-linter's contracts pass on the code, and fail on a copy with one
bad import; SQL stays in db/ (no SQLAlchemy query construct is imported elsewhere)."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGES = ("pages", "cli", "core", "db", "dashboard", "services", "training", "bench")
LINT = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command as c; sys.exit(c())"]
# what code outside db/ may take from SQLAlchemy: the engine type, the duplicate-key
# exception ingest turns into "duplicate", and the URL builder that quotes a SQLite path
ALLOWED_SQLALCHEMY = {"Engine", "IntegrityError", "URL"}


def _lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        LINT,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root), "HOME": str(root)},
    )


def test_contracts_are_kept():
    proc = _lint(ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


@pytest.mark.parametrize(
    "module, bad_import",
    [
        ("db/queue.py", "from services import worker as _cycle  # db -> services -> db"),
        ("core/metrics.py", "import db.schema as _leak  # the domain reaching for the database"),
        ("services/ingest.py", "import streamlit as _ui  # a service drawing a page"),
        ("training/evaluate.py", "from db import studies as _rows  # offline work reading the database"),
        ("core/labels.py", "from training import evaluate as _up  # the runtime domain reaching for training"),
        ("pages/review.py", "from db.reviews import load_study as _skip  # a screen going round the services"),
        ("dashboard/reading_payload.py", "import db.studies as _rows  # a widget reading tables itself"),
    ],
)
def test_a_bad_import_breaks_the_build(tmp_path, module, bad_import):
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{bad_import}\n")
    proc = _lint(tmp_path)
    assert proc.returncode != 0 and "BROKEN" in proc.stdout, proc.stdout + proc.stderr


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            roots.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            roots.update(a.name.split(".")[0] for a in node.names)
    return roots


def test_the_entry_page_reaches_storage_only_through_services():
    """Home.py is a script, not a package, so import-linter cannot see it: the same rule by hand."""
    assert "db" not in _imported_roots(ROOT / "Home.py")


def test_every_name_a_screen_imports_exists():
    """Screens import some names inside functions (sign-in paths run rarely): each
    ``from X import name`` in Home.py, pages/ and dashboard/ must resolve, or that path
    fails only when a user reaches it."""
    import importlib
    import importlib.util

    missing = []
    for path in [ROOT / "Home.py", *sorted((ROOT / "pages").glob("*.py")), *sorted((ROOT / "dashboard").glob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                if node.module.split(".")[0] not in PACKAGES:
                    continue
                module = importlib.import_module(node.module)
                package = hasattr(module, "__path__")  # `from package import submodule` names a file
                for alias in node.names:
                    sub = package and importlib.util.find_spec(f"{node.module}.{alias.name}") is not None
                    if not hasattr(module, alias.name) and not sub:
                        missing.append(f"{path.name}: {node.module}.{alias.name}")
    assert missing == []


def _sqlalchemy_names(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "sqlalchemy":
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import) and any(a.name.split(".")[0] == "sqlalchemy" for a in node.names):
            names.add("sqlalchemy")
    return names


def test_sql_is_written_only_in_db():
    files = [ROOT / "Home.py", *sorted((ROOT / "pages").glob("*.py"))]
    for package in ("cli", "core", "dashboard", "services", "training", "bench"):
        files += sorted((ROOT / package).rglob("*.py"))
    leaks = {str(f.relative_to(ROOT)): sorted(_sqlalchemy_names(f) - ALLOWED_SQLALCHEMY) for f in files}
    assert {f: n for f, n in leaks.items() if n} == {}


def test_pages_are_screens_not_shims():
    """Each page file holds its own screen: more than an import and a call."""
    for page in sorted(p for p in (ROOT / "pages").glob("*.py") if p.name != "__init__.py"):
        tree = ast.parse(page.read_text())
        statements = [n for n in tree.body if not isinstance(n, (ast.Import, ast.ImportFrom, ast.Expr))]
        assert len(statements) >= 3, f"{page.name} only forwards to another module"


def test_one_command_line_names_every_verb_and_each_resolves():
    """``cxr`` is declared once, as a console script, and every verb it lists imports."""
    import tomllib

    from cli.main import VERBS, resolve

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"] == {"cxr": "cli.main:main"}
    for name in VERBS:
        assert callable(resolve(name)), name
    entries = [
        str(p.relative_to(ROOT))
        for package in ("core", "db", "services", "training", "dashboard")
        for p in (ROOT / package).rglob("*.py")
        if '__name__ == "__main__"' in p.read_text()
    ]
    assert entries == []  # one way in: `cxr VERB`; no module is also a script

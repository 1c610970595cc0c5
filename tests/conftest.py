"""Shared fixtures: the real data folder beside the project, temporary data folders,
and the default model (loaded once per test session)."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # each xdist worker has a core of its own: thread pools sized to the machine would make
    # the workers' threads take the cores from each other (OpenBLAS's threads spin after
    # each product); one thread each for NumPy's BLAS, TensorFlow and the ONNX analyzer
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        os.environ.setdefault(name, "1")
    os.environ.setdefault("CXR_RUNTIME_THREADS", "1")
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # in case NumPy was loaded before this file

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("CXR_SHARED_DATA", ROOT.parent / "shared" / "data"))
NIH_LABELS = SHARED / "nih" / "labels" / "Data_Entry_2017_v2020.csv.gz"
DEFAULT_MODEL = ROOT / "models" / "default"


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashing():
    """Argon2id at its lowest cost in this process (1 pass over 1 MiB, one lane) instead
    of the app's 3 passes over 64 MiB: the hashes and checks are as real, and the fast
    loop's 68 hashes take well under a second instead of 12 s of CPU. The app and the
    processes the tests start keep the real cost."""
    from argon2 import PasswordHasher

    from db import users

    real = users._hasher
    users._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    yield
    users._hasher = real


def shared(*parts: str) -> Path:
    """A path in ../shared/data; the test is skipped with a reason when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path} is absent")
    return path


def real_image_files() -> list[Path]:
    if not SHARED.exists():
        return []
    out = []
    for sub in ("nih/full", "nih/512", "dicom", "other"):
        out.extend(sorted((SHARED / sub).glob("*")))
    return [p for p in out if p.is_file()]


POSTGRES_URL = os.environ.get("CXR_TEST_POSTGRES_URL")


def reset_postgres(url: str) -> None:
    """An empty public schema, so each test starts from migrations like a new site."""
    from sqlalchemy import create_engine, text

    from db import migrate

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    migrate._done.discard(url)


def make_settings(data_dir: Path, database_url: str | None = None, **overrides):
    """Settings built the way a site's environment would build them, without touching
    os.environ: a data folder, its SQLite file (or the given URL) and the default model."""
    from core.config import Settings, sqlite_url

    data_dir = Path(data_dir).resolve()
    overrides.setdefault("embedded_worker", False)
    return Settings(
        data_dir=data_dir,
        database_url=database_url or sqlite_url(data_dir / "cxr.sqlite3"),
        model_dir=DEFAULT_MODEL,
        **overrides,
    )


def settings_env(settings, **extra: str) -> dict[str, str]:
    """The environment that makes a child process (a CLI, a worker) build these settings."""
    env = dict(
        os.environ,
        CXR_DATA_DIR=str(settings.data_dir),
        CXR_DATABASE_URL=settings.database_url,
        CXR_MODEL=str(settings.model_dir),
        CXR_EMBEDDED_WORKER="1" if settings.embedded_worker else "0",
    )
    env.update(extra)
    return env


@contextmanager
def app_settings(settings):
    """Run in-process Streamlit apps (AppTest) on these settings."""
    from dashboard.state import use_settings

    use_settings(settings)
    try:
        yield settings
    finally:
        use_settings(None)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def settings(request, tmp_path):
    """Settings for a fresh data folder; every engine and verdict test runs on SQLite and,
    where CXR_TEST_POSTGRES_URL names a server (CI starts one), on PostgreSQL."""
    from db.session import get_engine

    if request.param == "postgresql":
        if not POSTGRES_URL:
            pytest.skip("no PostgreSQL server: set CXR_TEST_POSTGRES_URL (.ci/run starts one)")
        get_engine.cache_clear()
        reset_postgres(POSTGRES_URL)
        return make_settings(tmp_path / "data", POSTGRES_URL)
    return make_settings(tmp_path / "data")


@pytest.fixture
def db_engine(settings):
    from db.bootstrap import open_database

    engine = open_database(settings)
    yield engine
    engine.dispose()
    if engine.dialect.name == "postgresql":
        from db.session import get_engine

        get_engine.cache_clear()


@pytest.fixture(scope="session")
def analyzer():
    if not (DEFAULT_MODEL / "model_card.json").exists():
        pytest.skip("models/default is not trained yet")
    from core.inference import Analyzer

    return Analyzer(DEFAULT_MODEL)


@pytest.fixture(scope="session")
def identity_analyzer():
    if not (DEFAULT_MODEL / "model_card.json").exists():
        pytest.skip("models/default is not trained yet")
    from core.inference import Analyzer

    return Analyzer(DEFAULT_MODEL, views=["identity"])


MODEL_FIXTURES = {"analyzer", "identity_analyzer"}


def pytest_collection_modifyitems(config, items):
    """A test that runs the TensorFlow model (it asks for a loaded analyzer) is ``slow``:
    loading and tracing the model alone takes seconds on a CPU, so the edit loop
    (``-m "not slow and not browser and not postgres"``) leaves it to the full run."""
    for item in items:
        if MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


# the browser tests' shared server and Chromium (session fixtures; imported last: that
# module reads this one's constants)
from tests.browser_app import app_server, browser  # noqa: E402, F401


def pytest_terminal_summary(terminalreporter) -> None:
    """How this session's fuzz cases ended, once they have all run (no test depends on order)."""
    import sys

    fuzz = sys.modules.get("tests.test_fuzz")
    stats = getattr(fuzz, "STATS", None)
    if stats and stats["accepted"] + stats["rejected"]:
        total = stats["accepted"] + stats["rejected"]
        terminalreporter.write_line(
            f"fuzz: {total} cases, {stats['rejected']} rejected, {stats['accepted']} accepted (a crash fails its test)"
        )


def analysed_studies(engine, flagged: set[str], n: int) -> list[int]:
    """``n`` analysed studies (status done, model "v1") with a prediction for every NIH
    label, ``flagged`` ones above their threshold; the first listed is the most urgent.
    For tests of reads and verdicts that need no image."""
    from core.labels import LABELS
    from db.schema import Prediction, Study
    from db.session import run_write

    def work(session) -> list[int]:
        ids = []
        for i in range(n):
            study = Study(
                sha256=f"{i + 1:064x}",
                original_name=f"s{i}.png",
                stored_path=f"originals/x/{i}.png",
                file_format="png",
                width=64,
                height=64,
                status="done",
                model_version="v1",
                priority=float(n - i),  # study order = triage order
            )
            session.add(study)
            session.flush()
            session.add_all(
                Prediction(
                    study_id=study.id,
                    label=lab,
                    probability=0.9 if lab in flagged else 0.1,
                    spread=0.0,
                    threshold=0.5,
                    flagged=lab in flagged,
                    model_name="m",
                    model_version="v1",
                    threshold_version="t1",
                )
                for lab in LABELS
            )
            ids.append(study.id)
        return ids

    return run_write(engine, work)

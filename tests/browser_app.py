"""The real app (streamlit run Home.py, embedded worker, double reading) and Debian's
Chromium, shared by the browser tests (one server per test session), with the helpers
they drive it with. Registered as fixtures through tests/conftest.py."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from tests.conftest import DEFAULT_MODEL, ROOT, SHARED

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason="Debian chromium is not installed (apt-get install chromium)"
    ),
    pytest.mark.skipif(not SHARED.exists(), reason="real data not available: ../shared/data is absent"),
    pytest.mark.skipif(not (DEFAULT_MODEL / "model_card.json").exists(), reason="default model not trained"),
]
PASSWORD = "correct horse battery"

CHROME_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
SHOTS = Path(os.environ.get("CXR_SCREENSHOTS", ROOT / "tests" / "artifacts"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_app(data: Path, **env_extra: str) -> Iterator[dict]:
    """The real app (streamlit run Home.py, embedded worker, default model) on a free port
    over the site in ``data``; yields its url, database url and data folder."""
    env = dict(os.environ, CXR_DATA_DIR=str(data), CXR_MODEL=str(DEFAULT_MODEL), CXR_EMBEDDED_WORKER="1", **env_extra)
    env.pop("CXR_DATABASE_URL", None)
    create_account(data, "alice", "admin", check=True)
    port = free_port()
    log = open(data / "streamlit.log", "w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "Home.py",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("streamlit did not start:\n" + (data / "streamlit.log").read_text()[-3000:])
        yield {"url": url, "db": f"sqlite:///{data / 'cxr.sqlite3'}", "data": data}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


@pytest.fixture(scope="session")
def app_server(tmp_path_factory):
    """The app shared by the browser tests, double reading on (a second reader has work)."""
    with running_app(tmp_path_factory.mktemp("e2e") / "data", CXR_READS_REQUIRED="2") as app:
        yield app


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROME_ARGS)
        yield b
        b.close()


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def sign_in(page, url: str, password: str = PASSWORD, user: str = "alice") -> None:
    page.goto(url)
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()


def go(page, title: str, heading: str | None = None) -> None:
    """Open a page from the sidebar (opened first where the reading screen folded it away)
    and wait for its heading (a condition, not a delay)."""
    open_sidebar(page)
    page.get_by_test_id("stSidebarNav").get_by_text(title, exact=True).click()
    if heading:  # a first load on a busy 2-core machine (the worker analysing beside it) may take long
        page.get_by_role("heading", name=heading).first.wait_for(timeout=90_000)


def open_sidebar(page) -> None:
    if not page.get_by_test_id("stSidebarNav").is_visible():
        page.get_by_test_id("stExpandSidebarButton").click()
        page.get_by_test_id("stSidebarNav").wait_for()


def wait_idle(page) -> None:
    """Wait until the app's script run has finished (Streamlit marks it on its root), so a
    click is not lost in a rerun that replaces the element it landed on."""
    page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for()


def verdict_rows(db_url: str, study_id: int, username: str | None = None) -> list:
    """The study's verdict rows: everyone's, or one reader's (other tests read it too)."""
    from db.schema import User, Verdict

    query = select(Verdict.label, Verdict.verdict, Verdict.reviewer_id, Verdict.present).where(
        Verdict.study_id == study_id
    )
    if username is not None:
        query = query.join(User, User.id == Verdict.reviewer_id).where(User.username == username)
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return conn.execute(query).all()
    finally:
        engine.dispose()


def poll(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.25)
    return False


def wait_done(db_url: str, n: int, timeout: float = 180) -> list:
    from db.schema import Study

    engine = create_engine(db_url)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            with engine.connect() as conn:
                rows = conn.execute(select(Study.id, Study.status, Study.original_name)).all()
            if len(rows) >= n and all(r.status in ("done", "failed") for r in rows):
                return rows
            time.sleep(1)
    finally:
        engine.dispose()
    pytest.fail(f"studies not processed in time: {rows}")


def ingest(app_server: dict, files: list[Path]) -> None:
    """Queue files the way a site's batch import does (cxr ingest); the app's
    embedded worker analyses them. Files already stored are recognised as duplicates."""
    env = dict(os.environ, CXR_DATA_DIR=str(app_server["data"]), CXR_EMBEDDED_WORKER="0")
    env.pop("CXR_DATABASE_URL", None)
    subprocess.run(
        [sys.executable, "-m", "cli", "ingest", *map(str, files)], cwd=ROOT, env=env, capture_output=True, check=False
    )


def create_account(data: Path, name: str, role: str = "reviewer", check: bool = False) -> None:
    """An account on the site in ``data`` (cxr users, as an admin would create
    one); without ``check`` an existing account is kept."""
    env = dict(os.environ, CXR_DATA_DIR=str(data))
    env.pop("CXR_DATABASE_URL", None)
    subprocess.run(
        [sys.executable, "-m", "cli", "users", "create", name, "--role", role, "--password-stdin"],
        input=PASSWORD + "\n",
        text=True,
        cwd=ROOT,
        env=env,
        capture_output=True,
        check=check,
    )

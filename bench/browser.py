"""The reading screen in real Chromium with 10,000 studies in the database.

Medians over ``--studies`` studies (default 20): "Submit" (here: Normal study, the same
save path) to the next study's image visible; worklist "Read next" to the review image
visible; and Analytics first load and cached reload (to its metrics table). Baseline in
the same run: a bare page with no database work (the Model page), which bounds what any
page costs in this browser and server. Targets on this machine: submit-to-next < 1.0 s,
worklist-to-review < 1.5 s, analytics < 3 s.

Run: python -m bench.browser [--n 10000] [--studies 20]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.common import ROOT, require_shared, table

CHROMIUM = "/usr/bin/chromium"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seed_site(data: Path, n: int, image: Path) -> None:
    from bench.common import bench_settings
    from bench.seed import seed
    from db.bootstrap import open_database
    from db.users import create_user

    settings = bench_settings(data)
    engine = open_database(settings)
    t = time.perf_counter()
    seed(engine, data, image, n, reviewed_fraction=0.5, triage=settings.triage())
    create_user(engine, "reader", "bench reader password", "admin", actor="bench")
    engine.dispose()
    print(f"seeded {n} studies (half reviewed) in {time.perf_counter() - t:.1f}s")


def start_app(data: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = dict(os.environ, CXR_DATA_DIR=str(data), CXR_EMBEDDED_WORKER="0")
    env.pop("CXR_DATABASE_URL", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "Home.py",
            "--server.port",
            str(port),
            "--server.headless",
            "true",
            "--server.fileWatcherType",
            "none",
            "--browser.gatherUsageStats",
            "false",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return proc, url
        except OSError:
            time.sleep(0.3)
    proc.kill()
    sys.exit("streamlit did not start")


def idle(page) -> None:
    page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for()


def image_shown(page) -> None:
    page.get_by_test_id("stPlotlyChart").first.locator("svg").first.wait_for()
    idle(page)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--studies", type=int, default=20)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    image = require_shared() / "nih" / "full" / "00000001_000.png"
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        seed_site(data, args.n, image)
        proc, url = start_app(data)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(
                    executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
                )
                page = browser.new_page(viewport={"width": 1280, "height": 720})
                page.set_default_timeout(60000)
                page.goto(url)
                page.get_by_label("User name").fill("reader")
                page.get_by_label("Password", exact=True).fill("bench reader password")
                page.get_by_role("button", name="Sign in").click()
                page.get_by_text("Queued").first.wait_for()
                rows = measure(page, args.studies)
                browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    table(rows, f"Chromium 1280x720, {args.n} studies in SQLite (median of {args.studies} where repeated)")


def measure(page, studies: int) -> list[dict]:
    def nav(title: str) -> None:
        if not page.get_by_test_id("stSidebarNav").is_visible():  # the reading screen folds the sidebar
            page.get_by_test_id("stExpandSidebarButton").click()
        page.get_by_test_id("stSidebarNav").get_by_text(title, exact=True).click()

    baseline = []
    for _ in range(5):
        t = time.perf_counter()
        nav("Model")
        page.get_by_role("heading", name="Model:").wait_for()
        idle(page)
        baseline.append(time.perf_counter() - t)
        nav("Home")
        page.get_by_text("Queued").first.wait_for()
    to_review = []
    for _ in range(5):
        nav("Worklist")
        page.get_by_role("button", name="Read next").wait_for()
        idle(page)
        t = time.perf_counter()
        page.get_by_role("button", name="Read next").click()
        image_shown(page)
        to_review.append(time.perf_counter() - t)
    submit = []
    for _ in range(studies):
        heading = page.get_by_role("heading", name="Review: study")
        before = heading.inner_text()
        time.sleep(1.6)  # a reader looks before saving (the double-click guard needs 1.5 s)
        t = time.perf_counter()
        page.get_by_role("button", name="Normal study").first.click()
        page.wait_for_function(
            "b => { const h = document.querySelector('h1'); return h && h.innerText.trim() !== b; }", arg=before.strip()
        )
        image_shown(page)
        submit.append(time.perf_counter() - t)
    nav("Analytics")
    t = time.perf_counter()
    page.get_by_text("studies with ground truth").first.wait_for()
    idle(page)
    first = time.perf_counter() - t
    cached = []
    for _ in range(3):
        nav("Home")
        page.get_by_text("Queued").first.wait_for()
        t = time.perf_counter()
        nav("Analytics")
        page.get_by_text("studies with ground truth").first.wait_for()
        idle(page)
        cached.append(time.perf_counter() - t)
    return [
        {
            "step": "Submit (Normal study) -> next study's image visible",
            "median_s": statistics.median(submit),
            "max_s": max(submit),
            "target_s": 1.0,
        },
        {
            "step": "Worklist 'Read next' -> review image visible",
            "median_s": statistics.median(to_review),
            "max_s": max(to_review),
            "target_s": 1.5,
        },
        {"step": "Analytics, first load (cohort metrics computed)", "median_s": first, "max_s": first, "target_s": 3.0},
        {
            "step": "Analytics, cached reload",
            "median_s": statistics.median(cached),
            "max_s": max(cached),
            "target_s": 3.0,
        },
        {
            "step": "baseline: Model page (no database work)",
            "median_s": statistics.median(baseline),
            "max_s": max(baseline),
            "target_s": float("nan"),
        },
    ]


if __name__ == "__main__":
    main()

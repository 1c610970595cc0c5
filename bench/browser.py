"""The reading screen in real Chromium with 10,000 studies in the database.

Measured in the page (from the key event's own time stamp to the frame after the screen
changed): a key in the reading component (J/K: the focus row moves) and "N" (normal, submit)
to the next study's image drawn; from Python: worklist "Read next" to the review image
drawn; Analytics first load and cached reload. Baselines in the same run, on the same
database: the review page of ``--baseline-rev`` (a git worktree of the last commit before
the reading component, where every key reran the page script), its key and its submit to
the next image; and a bare page with no database work (the Model page). Targets on this machine:
key < 50 ms, submit to next < 300 ms, worklist to review < 1 s, analytics < 3 s.

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
BASELINE_REV = "8a4d9ce"  # the last review page before the reading component (issue 21)


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


def start_app(data: Path, cwd: Path = ROOT) -> tuple[subprocess.Popen, str]:
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
        cwd=cwd,
        env=env,
        stdout=open(data / f"streamlit-{port}.log", "w"),  # noqa: SIM115 (closed with the process)
        stderr=subprocess.STDOUT,
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
    page.locator('[data-testid="reader-viewport"][data-ready="true"]').first.wait_for()
    idle(page)


# in the page: the reading panel (inside the component's shadow root) and a clock from a
# key's own event time stamp to the first frame after the change it caused
PANEL_CLOCK = """() => {
  const host = [...document.querySelectorAll('*')]
    .find(e => e.shadowRoot && e.shadowRoot.querySelector('[data-testid=verdict-panel]'));
  window.__panel = host.shadowRoot.querySelector('[data-testid=verdict-panel]');
  window.__viewport = host.shadowRoot.querySelector('[data-testid=reader-viewport]');
  window.__lat = []; window.__key = 0;
  window.addEventListener('keydown', e => { window.__key = e.timeStamp; }, true);
  new MutationObserver(() => requestAnimationFrame(() => setTimeout(() =>
    window.__lat.push(performance.now() - window.__key), 0)))
    .observe(window.__panel, {attributes: true, attributeFilter: ['data-focused']});
}"""
# resolves with ms from the key to the next study's image drawn (data-ready on a new study)
NEXT_STUDY_CLOCK = """(before) => { window.__next = new Promise(resolve => {
  setTimeout(() => resolve(-1), 30000);  // reported, never waited for forever
  const check = () => {
    const host = [...document.querySelectorAll('*')]
    .find(e => e.shadowRoot && e.shadowRoot.querySelector('[data-testid=verdict-panel]'));
    const panel = host && host.shadowRoot.querySelector('[data-testid=verdict-panel]');
    const view = host && host.shadowRoot.querySelector('[data-testid=reader-viewport]');
    if (panel && panel.dataset.study !== before && view && view.dataset.ready === 'true') {
      requestAnimationFrame(() => setTimeout(() => resolve(performance.now() - window.__submitKey), 0));
    } else requestAnimationFrame(check);
  };
  check();
}); }"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--studies", type=int, default=20)
    parser.add_argument(
        "--baseline-rev",
        default=BASELINE_REV,
        help="the commit whose review page (Streamlit widgets, a page run per key) is the baseline",
    )
    parser.add_argument("--keep", type=Path, default=None, help="a data folder to seed once and reuse")
    parser.add_argument(
        "--analytics-only", action="store_true", help="only the Analytics page (first load, cached), no baseline"
    )
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    image = require_shared() / "nih" / "full" / "00000001_000.png"
    if args.analytics_only:
        analytics_only(args.n, image, args.keep)
        return
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        os.environ["CXR_BENCH_DATA"] = str(data)
        seed_site(data, args.n, image)
        worktree = Path(tmp) / "baseline"
        subprocess.run(["git", "worktree", "add", "--detach", str(worktree), args.baseline_rev], cwd=ROOT, check=True)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(
                    executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
                )
                proc, url = start_app(data, worktree)
                try:
                    page = signed_in(browser, url)
                    baseline = measure_rerun_review(page, 5)
                    page.close()
                finally:
                    proc.terminate()
                    proc.wait(timeout=30)
                proc, url = start_app(data)
                try:
                    rows = measure(signed_in(browser, url), args.studies) + baseline
                finally:
                    proc.terminate()
                    proc.wait(timeout=30)
                browser.close()
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT, check=False)
    for row in rows:
        row.setdefault("p95_s", float("nan"))  # single measurements have no 95th percentile
    table(rows, f"Chromium 1280x720, {args.n} studies in SQLite (median of {args.studies} where repeated)")


def analytics_only(n: int, image: Path, keep: Path | None) -> None:
    """The Analytics page alone at ``n`` studies (a data folder seeded once with --keep),
    beside the Model page (no database work) in the same app."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        data = keep or Path(tmp) / "data"
        if not (data / "cxr.sqlite3").is_file():
            seed_site(data, n, image)
        _reader(data)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
            proc, url = start_app(data)
            try:
                page = signed_in(browser, url)
                nav = navigator(page)
                first, cached = measure_analytics(page, nav)
                model = [model_page_load(page, nav) for _ in range(3)]
            finally:
                proc.terminate()
                proc.wait(timeout=30)
            browser.close()
    rows = analytics_rows(first, cached)
    rows.append({"step": "baseline: Model page (no database work)", "median_s": statistics.median(model)})
    for row in rows:
        row.setdefault("max_s", float("nan"))
        row.setdefault("target_s", float("nan"))
    table(rows, f"Chromium 1280x720, Analytics at {n} studies in SQLite")


def _reader(data: Path) -> None:
    """The bench's reader account, in a folder seeded without one."""
    from bench.common import bench_settings
    from db.bootstrap import open_database
    from db.users import create_user, list_users

    engine = open_database(bench_settings(data))
    if "reader" not in {u.username for u in list_users(engine)}:
        create_user(engine, "reader", "bench reader password", "admin", actor="bench")
    engine.dispose()


def signed_in(browser, url: str):
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    page.set_default_timeout(60000)
    page.goto(url)
    page.get_by_label("User name").fill("reader")
    page.get_by_label("Password", exact=True).fill("bench reader password")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Queued").first.wait_for()
    return page


def measure_rerun_review(page, studies: int) -> list[dict]:
    """The baseline: the review page of ``--baseline-rev``, where each key reran the page.
    Key: J, to the focused row's new name drawn and the run finished; submit: Normal study,
    to the next study's image."""
    page.goto(page.url.rstrip("/") + "/review")
    page.get_by_text("Your verdict", exact=True).wait_for()
    idle(page)
    focus = page.locator(".st-key-focus_row strong")
    keys = []
    for i in range(20):
        before = focus.inner_text()
        t = time.perf_counter()
        page.keyboard.press("j" if i % 2 == 0 else "k")
        page.wait_for_function(
            "b => { const e = document.querySelector('.st-key-focus_row strong'); return e && e.innerText !== b; }",
            arg=before,
        )
        idle(page)
        keys.append(time.perf_counter() - t)
    submit = []
    for _ in range(studies):
        before = page.get_by_role("heading", name="Review: study").inner_text().strip()
        time.sleep(1.6)  # that page's double-click guard
        t = time.perf_counter()
        page.get_by_role("button", name="Normal study").first.click()
        page.wait_for_function(
            "b => { const h = document.querySelector('h1'); return h && h.innerText.trim() !== b; }", arg=before
        )
        page.get_by_test_id("stPlotlyChart").first.locator("svg").first.wait_for()
        idle(page)
        submit.append(time.perf_counter() - t)
    return [
        {
            "step": "baseline: key (J/K) on the rerun-per-key review (a page run each)",
            "median_s": statistics.median(keys),
            "max_s": max(keys),
            "p95_s": sorted(keys)[int(0.95 * (len(keys) - 1))],
            "target_s": float("nan"),
        },
        {
            "step": "baseline: Normal study -> next image on the rerun-per-key review",
            "median_s": statistics.median(submit),
            "max_s": max(submit),
            "p95_s": sorted(submit)[int(0.95 * (len(submit) - 1))],
            "target_s": float("nan"),
        },
    ]


def navigator(page):
    def nav(title: str) -> None:
        if not page.get_by_test_id("stSidebarNav").is_visible():  # the reading screen folds the sidebar
            page.get_by_test_id("stExpandSidebarButton").click()
        page.get_by_test_id("stSidebarNav").get_by_text(title, exact=True).click()

    return nav


def measure_analytics(page, nav) -> tuple[float, list[float]]:
    """Analytics opened for the first time since the data last changed (the cohort's
    figures computed), then three reloads from Home with the data unchanged."""
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
    return first, cached


def analytics_rows(first: float, cached: list[float]) -> list[dict]:
    return [
        {"step": "Analytics, first load (cohort metrics computed)", "median_s": first, "max_s": first, "target_s": 3.0},
        {
            "step": "Analytics, cached reload",
            "median_s": statistics.median(cached),
            "max_s": max(cached),
            "target_s": 3.0,
        },
    ]


def model_page_load(page, nav) -> float:
    """Seconds from choosing the Model page to its run finished (no database work: the
    app's own baseline)."""
    t = time.perf_counter()
    nav("Model")
    page.get_by_role("heading", name="Model:").wait_for()
    idle(page)
    return time.perf_counter() - t


def measure(page, studies: int) -> list[dict]:
    nav = navigator(page)

    baseline = []
    for _ in range(5):
        baseline.append(model_page_load(page, nav))
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
    print("worklist -> review measured", flush=True)
    page.evaluate(PANEL_CLOCK)
    page.evaluate(
        "() => window.addEventListener('keydown', e => { if (e.key === 'n') window.__submitKey = e.timeStamp; }, true)"
    )
    for i in range(60):
        page.keyboard.press("j" if i % 2 == 0 else "k")
        page.wait_for_timeout(60)
    keys = page.evaluate("window.__lat")
    ordered = sorted(keys)
    print(
        f"{len(keys)} keys: median {statistics.median(keys):.1f} ms, "
        f"p95 {ordered[int(0.95 * (len(keys) - 1))]:.1f} ms, max {ordered[-1]:.1f} ms",
        flush=True,
    )
    submit = []
    for _ in range(studies):
        before = page.evaluate("() => window.__panel.dataset.study")
        time.sleep(1.1)  # a reader looks before saving (the double-press guard needs 1 s)
        page.evaluate(NEXT_STUDY_CLOCK, before)  # armed, not awaited: the key comes next
        page.keyboard.press("n")
        took = page.evaluate("() => window.__next")
        if took < 0:
            sys.exit(f"no next study within 30 s of N: {page.get_by_test_id('reader-status').inner_text()!r}")
        submit.append(took / 1000)
        idle(page)
        page.evaluate(PANEL_CLOCK)  # the page run after a submission may remount the panel
    first, cached = measure_analytics(page, nav)
    keys_s = [k / 1000 for k in keys]
    return [
        {
            "step": "Key (J/K) -> reading panel updated on screen",
            "median_s": statistics.median(keys_s),
            "max_s": max(keys_s),
            "p95_s": sorted(keys_s)[int(0.95 * (len(keys_s) - 1))],
            "target_s": 0.05,
        },
        {
            "step": "Submit (N) -> next study's image drawn",
            "median_s": statistics.median(submit),
            "max_s": max(submit),
            "p95_s": sorted(submit)[int(0.95 * (len(submit) - 1))],
            "target_s": 0.3,
        },
        {
            "step": "Worklist 'Read next' -> review image drawn",
            "median_s": statistics.median(to_review),
            "max_s": max(to_review),
            "p95_s": sorted(to_review)[int(0.95 * (len(to_review) - 1))],
            "target_s": 1.0,
        },
        *analytics_rows(first, cached),
        {
            "step": "baseline: Model page (no database work)",
            "median_s": statistics.median(baseline),
            "max_s": max(baseline),
            "target_s": float("nan"),
        },
    ]


if __name__ == "__main__":
    main()

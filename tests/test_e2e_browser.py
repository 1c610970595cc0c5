"""End to end: the real app (streamlit run Home.py) driven in Debian's Chromium.

Signs in, uploads a real NIH PNG and the real CR DICOM, waits for the embedded worker,
opens the first study from the worklist, shows a heatmap, submits a verdict and checks
the verdict rows in the database; a truncated PNG upload shows its message. Screenshots
of each page go to tests/artifacts/ (or $CXR_SCREENSHOTS).
"""

import os
import subprocess
import sys
import urllib.request
import zipfile

from tests.browser_app import (
    BROWSER_MARKS,
    go,
    open_sidebar,
    poll,
    shot,
    sign_in,
    verdict_rows,
    wait_done,
    wait_idle,
)
from tests.conftest import ROOT, SHARED

pytestmark = BROWSER_MARKS


def test_wrong_password_shows_no_study(app_server, browser):
    page = browser.new_page()
    sign_in(page, app_server["url"], password="not the password")
    page.get_by_text("Wrong user name or password").wait_for(timeout=20000)
    assert page.get_by_test_id("stSidebarNav").count() == 0
    shot(page, "00_wrong_password")
    page.close()


def test_upload_review_verdict_in_chromium(app_server, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(30000)
    sign_in(page, app_server["url"])
    page.get_by_text("Queued").first.wait_for()
    shot(page, "01_home")

    go(page, "Upload")
    png = SHARED / "nih" / "full" / "00000001_000.png"
    dcm = SHARED / "dicom" / "cr_chest.dcm"
    page.locator("input[type=file]").set_input_files([str(png), str(dcm)])
    page.get_by_text("cr_chest.dcm").first.wait_for()
    page.get_by_role("button", name="Upload and queue").click()
    page.get_by_text("accepted as study").first.wait_for()
    assert poll(lambda: page.get_by_text("accepted as study").count() == 2, 30)  # each file its own line
    rows = wait_done(app_server["db"], 2)
    assert {r.status for r in rows} == {"done"}
    shot(page, "02_upload")

    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(png.read_bytes()[:20000])
    page.locator("input[type=file]").set_input_files([str(truncated)])
    page.get_by_text("truncated.png").first.wait_for()
    page.get_by_role("button", name="Upload and queue").click()
    page.get_by_text("truncated or corrupt").first.wait_for()
    shot(page, "03_bad_upload")

    # 200+ malformed files in one zip: each gets its own rejection line, the app keeps serving
    from tests.test_load_faults import malformed_corpus

    corpus = malformed_corpus()
    bad_zip = tmp_path / "malformed.zip"
    with zipfile.ZipFile(bad_zip, "w") as zf:
        for name, data in corpus:
            zf.writestr(name, data)
    page.locator("input[type=file]").set_input_files([str(bad_zip)])
    page.get_by_text("malformed.zip").first.wait_for()
    page.get_by_role("button", name="Upload and queue").click()
    page.get_by_text(f"{len(corpus)} rejected").wait_for(timeout=120000)
    assert urllib.request.urlopen(f"{app_server['url']}/_stcore/health", timeout=5).read() == b"ok"
    shot(page, "03b_malformed_zip")

    go(page, "Worklist")
    grid = page.get_by_test_id("stDataFrame").first
    grid.wait_for()
    shot(page, "04_worklist")
    page.get_by_role("button", name="Read next").click()
    page.get_by_text("Your verdict", exact=True).wait_for()
    first_id = int(page.get_by_role("heading", name="Review: study").inner_text().split()[-1])

    page.get_by_text("Grad-CAM overlay").first.wait_for()
    overlay_box = page.get_by_test_id("stSelectbox").filter(has_text="Grad-CAM overlay")
    overlay_box.click()
    page.get_by_role("option").nth(1).click()  # the first flagged finding, or the first on request
    page.get_by_test_id("stPlotlyChart").filter(has_text="Grad-CAM:").first.wait_for()
    shot(page, "05_review_heatmap")

    # unflagged findings default to "absent: correct"; each flagged one needs a decision. A
    # click that lands while the page reruns can be lost: the app then says which finding is
    # undecided, and the reviewer marks it again, as a person would
    for _ in range(3):
        wait_idle(page)
        for option in page.get_by_text("present: flag correct", exact=True).all():
            option.click()
        page.get_by_role("button", name="Submit verdict and open next").click()
        if poll(lambda: len(verdict_rows(app_server["db"], first_id, "alice")) == 15, 20):
            break
        assert page.get_by_text("mark every flagged finding").count(), "the verdict was neither stored nor refused"
    verdicts = verdict_rows(app_server["db"], first_id, "alice")  # other tests' readers may read it too
    shot(page, "06_after_verdict")
    assert len(verdicts) == 15 and len({v.reviewer_id for v in verdicts}) == 1

    for title, heading, name in (
        ("Analytics", "Cohort analytics", "07_analytics"),
        ("Model", "Model:", "08_model"),
        ("Admin", "Administration", "09_admin"),
    ):
        go(page, title, heading)
        shot(page, name)
    page.close()


def test_reading_flow_at_1280x720(app_server, browser):
    """Read next opens the reader's most urgent unread study; "Normal study" saves it and
    the next opens at the top with a toast naming the study saved; screenshots of the
    review screen at 1280x720 and 1920x1080."""
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    page.set_default_timeout(30000)
    sign_in(page, app_server["url"])
    page.get_by_text("Queued").first.wait_for()  # the app is up, its embedded worker started
    files = [str(SHARED / "nih" / "full" / "00000001_000.png"), str(SHARED / "dicom" / "cr_chest.dcm")]
    env = dict(os.environ, CXR_DATA_DIR=str(app_server["data"]), CXR_EMBEDDED_WORKER="0")
    env.pop("CXR_DATABASE_URL", None)
    subprocess.run([sys.executable, "-m", "cli", "ingest", *files], cwd=ROOT, env=env, capture_output=True)  # run alone
    rows = wait_done(app_server["db"], 2)
    go(page, "Worklist", "Worklist")
    page.get_by_role("button", name="Read next").click()
    heading = page.get_by_role("heading", name="Review: study")
    heading.wait_for()
    opened = int(heading.inner_text().split()[-1])
    assert opened in {r.id for r in rows}
    page.get_by_text("Your verdict", exact=True).wait_for()
    wait_idle(page)
    page.get_by_test_id("stPlotlyChart").first.locator("svg").first.wait_for()
    shot(page, "10_review_1280x720")
    submit = page.get_by_role("button", name="Submit verdict and open next")
    box = submit.bounding_box()
    assert box and box["y"] + box["height"] <= 720, f"Submit is below the fold at 1280x720: {box}"
    page.set_viewport_size({"width": 1920, "height": 1080})
    wait_idle(page)
    shot(page, "11_review_1920x1080")
    page.set_viewport_size({"width": 1280, "height": 720})
    page.mouse.wheel(0, 1500)  # the reader has scrolled down the verdict panel
    wait_idle(page)
    page.get_by_role("button", name="Normal study").first.click()
    page.get_by_text(f"Saved your verdict on study {opened}").wait_for()
    assert poll(lambda: len(verdict_rows(app_server["db"], opened, "alice")) == 15, 20)
    assert poll(
        lambda: (
            page.evaluate(
                "() => Math.max(window.scrollY, ...[...document.querySelectorAll('[data-testid=stMain], section.main')]"
                ".map(e => e.scrollTop))"
            )
            == 0
        ),
        10,
    ), "the next study did not open at the top"
    shot(page, "12_after_normal_study")
    page.close()


def test_refresh_keeps_the_session_and_a_study_link_survives_sign_in(app_server, browser):
    import re

    linked = re.compile(r"Review: study 1$|Study 1 does not exist")  # the link's study (run alone: none yet)
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    page = context.new_page()
    page.set_default_timeout(30000)
    page.goto(f"{app_server['url']}/review?study=1")  # a link opened while signed out
    page.get_by_label("User name").fill("alice")
    page.get_by_label("Password", exact=True).fill("correct horse battery")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text(linked).first.wait_for()  # the link's study, not Home
    wait_idle(page)
    assert poll(lambda: any(c["name"] == "cxr_session" for c in context.cookies()), 10)
    cookie = next(c for c in context.cookies() if c["name"] == "cxr_session")
    assert "horse" not in cookie["value"] and cookie["value"].count(".") == 1  # signed claims, no password
    page.reload()  # F5
    page.get_by_text(linked).first.wait_for()
    assert page.get_by_label("User name").count() == 0
    shot(page, "13_after_refresh")
    open_sidebar(page)  # the reading screen folds the sidebar, where Sign out is
    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("User name").wait_for()
    wait_idle(page)
    page.reload()
    page.get_by_label("User name").wait_for()  # the old cookie no longer signs anyone in
    context.close()

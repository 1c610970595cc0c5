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
from tests.reader_page import panel, states, stored_truths, viewport, wait_status, wait_study

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
    first_id = wait_study(page)
    assert poll(lambda: viewport(page).get_attribute("data-overlay") != "" or not _flagged(page), 10)
    shot(page, "05_review_heatmap")  # the first flagged finding's map over the image

    # every flagged finding marked present with P (the focus walks down the flagged rows
    # first), the rest left unmarked: absent by the submit rule
    flagged = _flagged(page)
    for _ in flagged:
        page.keyboard.press("p")
    marked = states(page)
    page.wait_for_timeout(1100)
    page.keyboard.press("Control+Enter")
    wait_status(page, f"Saved your verdict on study {first_id}")
    verdicts = verdict_rows(app_server["db"], first_id, "alice")  # other tests' readers may read it too
    shot(page, "06_after_verdict")
    assert len(verdicts) == 15 and len({v.reviewer_id for v in verdicts}) == 1
    truths = stored_truths(app_server["db"], first_id, "alice")
    findings = {lab for lab, state in marked.items() if state == "present" and lab != "No Finding"}
    assert {lab for lab, yes in truths.items() if yes and lab != "No Finding"} == findings

    for title, heading, name in (
        ("Analytics", "Cohort analytics", "07_analytics"),
        ("Model", "Model:", "08_model"),
        ("Admin", "Administration", "09_admin"),
    ):
        go(page, title, heading)
        shot(page, name)
    page.close()


def _flagged(page) -> list[str]:
    rows = panel(page).locator("[data-label]")
    return rows.evaluate_all("rs => rs.filter(r => r.classList.contains('flagged')).map(r => r.dataset.label)")


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
    wait_study(page, opened)
    wait_idle(page)
    shot(page, "10_review_1280x720")
    rows = panel(page).locator("[data-label]")
    assert rows.count() == 15
    for box in (
        rows.last.bounding_box(),
        page.get_by_role("button", name="Submit: unmarked findings absent").bounding_box(),
    ):
        assert box and box["y"] + box["height"] <= 720, f"a row or Submit is below the fold at 1280x720: {box}"
    page.set_viewport_size({"width": 1920, "height": 1080})
    wait_idle(page)
    shot(page, "11_review_1920x1080")
    page.set_viewport_size({"width": 1280, "height": 720})
    page.wait_for_timeout(1100)
    page.get_by_role("button", name="Normal (N)").click()
    wait_status(page, f"Saved your verdict on study {opened}")
    assert poll(lambda: len(verdict_rows(app_server["db"], opened, "alice")) == 15, 20)
    nothing = page.get_by_text("Nothing waits for your review")
    assert poll(lambda: nothing.count() > 0 or panel(page).get_attribute("data-study") != str(opened), 20)
    if not nothing.count():  # the next study opens clean: nothing carried over
        assert all(s == "unset" for s in states(page).values()), "the next study carried the last one's marks"
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

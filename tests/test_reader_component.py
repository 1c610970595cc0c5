"""The reading workstation (issue 21) in real Chromium at 1280x720 on the real app: the
viewer and verdict panel are one browser component; keys act in the browser, a
submission is stored for the study it names. Screenshots go to tests/artifacts/ (40_...)."""

import pytest

from tests.browser_app import BROWSER_MARKS, create_account, ingest, shot, verdict_rows, wait_done
from tests.conftest import SHARED
from tests.reader_page import stored_truths, focused, labels, open_study, panel, reader_page, states, status, viewport, wait_status

pytestmark = BROWSER_MARKS
STUDY_FILES = [
    SHARED / "nih" / "full" / name
    for name in ("00000001_000.png", "00000002_000.png", "00000003_000.png", "00000013_018.png")
] + [SHARED / "dicom" / "cr_chest.dcm"]


@pytest.fixture(scope="module")
def site(app_server, browser):
    page = browser.new_page()
    page.goto(app_server["url"])  # the app's first script run starts its embedded worker
    page.get_by_label("User name").wait_for(timeout=30000)
    page.close()
    ingest(app_server, STUDY_FILES)
    rows = wait_done(app_server["db"], len(STUDY_FILES))
    create_account(app_server["data"], "dora")
    return {**app_server, "done": sorted(r.id for r in rows if r.status == "done"), "rows": rows}


def test_keys_mark_rows_in_the_browser_and_submit_stores_them(site, browser):
    context, page = reader_page(browser, site, "dora")
    sid = site["done"][0]
    open_study(page, site, sid)
    names = labels(page)
    assert len(names) == 15 and focused(page) == names[0]
    shot(page, "40_reader_open")
    page.keyboard.press("j")
    assert focused(page) == names[1]
    page.keyboard.press("k")
    page.keyboard.press("p")
    assert states(page)[names[0]] == "present" and focused(page) == names[1]
    page.keyboard.press("a")
    assert states(page)[names[1]] == "absent"
    page.wait_for_timeout(1100)
    page.keyboard.press("Control+Enter")
    wait_status(page, f"Saved your verdict on study {sid}")
    rows = stored_truths(site["db"], sid, "dora")
    assert len(rows) == 15 and rows[names[0]] and not rows[names[1]]
    assert int(panel(page).get_attribute("data-study")) != sid
    shot(page, "41_reader_saved")
    assert viewport(page).get_attribute("data-ready") == "true"
    print(status(page))
    context.close()

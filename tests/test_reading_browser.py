"""The reading screen's numbered problems (issue 13), each asserted in real Chromium at
1280x720 on the real app: double submission, per-reader queues, image size, the keyboard
(J/K/P/A, overlay, invert, window steps), contradictions, the scores table, analytics
guard rails, admin and Home. Screenshots go to tests/artifacts/ (20_...)."""

import json
import re

import pytest

from tests.browser_app import (
    BROWSER_MARKS,
    PASSWORD,
    create_account,
    go,
    ingest,
    poll,
    shot,
    sign_in,
    verdict_rows,
    wait_done,
    wait_idle,
)
from tests.conftest import DEFAULT_MODEL, SHARED

pytestmark = BROWSER_MARKS
STUDY_FILES = [
    SHARED / "nih" / "full" / name
    for name in ("00000001_000.png", "00000002_000.png", "00000003_000.png", "00000013_018.png")
] + [SHARED / "dicom" / "cr_chest.dcm"]
HEADING = re.compile(r"^Review: study \d+$")


@pytest.fixture(scope="module")
def site(app_server, browser, tmp_path_factory):
    """At least the five studies above analysed (others from other tests may be there) and
    a second reader, bob."""
    page = browser.new_page()
    page.goto(app_server["url"])  # the app's first script run starts its embedded worker
    page.get_by_label("User name").wait_for(timeout=30000)
    page.close()
    from pydicom.uid import generate_uid

    from tests.test_pacs import nih_dicom

    twelve_bit = tmp_path_factory.mktemp("dicom") / "twelve_bit.dcm"  # values 0-4080: window steps matter
    twelve_bit.write_bytes(nih_dicom("00000013_018.png", generate_uid(), "PA", "ACC12"))
    ingest(app_server, [*STUDY_FILES, twelve_bit])
    rows = wait_done(app_server["db"], len(STUDY_FILES) + 1)
    create_account(app_server["data"], "bob")
    return {**app_server, "done": sorted(r.id for r in rows if r.status == "done"), "rows": rows}


def _page(browser, site, user: str = "alice"):
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    page = context.new_page()
    page.set_default_timeout(30000)
    sign_in(page, site["url"], PASSWORD, user)
    page.get_by_text("Queued").first.wait_for()
    return context, page


def _open(page, site, sid: int, form: bool = True) -> None:
    page.goto(f"{site['url']}/review?study={sid}")
    page.get_by_role("heading", name=f"Review: study {sid}", exact=True).wait_for()
    if form:
        page.get_by_text("Your verdict", exact=True).wait_for()
    page.get_by_test_id("stPlotlyChart").first.locator("svg").first.wait_for()
    wait_idle(page)


def _study_on_screen(page) -> int:
    return int(page.get_by_role("heading", name=HEADING).inner_text().split()[-1])


def _panel_labels(page) -> list[str]:
    return page.get_by_test_id("stForm").locator("strong").all_inner_texts()


def _focused(page) -> str:
    return page.locator(".st-key-focus_row strong").inner_text()


def _press(page, key: str, until) -> None:
    """Press a shortcut and wait for its effect (a rerun replaces the page under a key press)."""
    page.keyboard.press(key)
    assert poll(until, 15), f"no effect of {key}"
    wait_idle(page)


def _unread_by(site, username: str) -> list[int]:
    """Analysed studies this reader has not read (others in this session read some): the
    ones they may open to read."""
    from sqlalchemy import create_engine, text

    engine = create_engine(site["db"])
    with engine.connect() as conn:
        ids = (
            conn.execute(
                text(
                    "select s.id from studies s where s.status = 'done' and not exists (select 1 from "
                    "verdict_sets v join users u on u.id = v.reviewer_id where v.study_id = s.id and u.username = :u) "
                    "order by s.id"
                ),
                {"u": username},
            )
            .scalars()
            .all()
        )
    engine.dispose()
    return list(ids)


def _done(site) -> list[int]:
    from sqlalchemy import create_engine, text

    engine = create_engine(site["db"])
    with engine.connect() as conn:
        ids = conn.execute(text("select id from studies where status = 'done'")).scalars().all()
    engine.dispose()
    return list(ids)


def test_keyboard_walks_the_findings_and_a_contradiction_is_refused(site, browser):
    """Problems 4, 5, 6 and 8: the image is large and Submit in view; J/K move the ▶ focus
    and the overlay follows it; P marks present; O and I toggle overlay and invert; "No
    Finding" present with a finding present is refused with a message and stores nothing;
    the scores table shows every row and column without scrolling."""
    context, page = _page(browser, site)
    sid = _unread_by(site, "alice")[0]
    _open(page, site, sid)
    chart = page.get_by_test_id("stPlotlyChart").first
    box = chart.bounding_box()
    assert box["height"] >= 400 and box["width"] >= 500, f"the image is small at 1280x720: {box}"
    submit = page.get_by_role("button", name="Submit verdict and open next").bounding_box()
    assert submit["y"] + submit["height"] <= 720, f"Submit is below the fold: {submit}"
    labels = _panel_labels(page)
    assert len(labels) == 15 and _focused(page) == labels[0]
    assert page.get_by_test_id("stForm").get_by_text("┃").count() >= 1  # the threshold mark on the bars

    overlay_on = "Grad-CAM:" in chart.inner_text()
    _press(page, "j", lambda: _focused(page) == labels[1])
    if overlay_on:  # the overlay follows the focused finding; "No Finding" leaves it where it was
        shown = labels[1] if labels[1] != "No Finding" else labels[0]
        assert poll(lambda: f"Grad-CAM: {shown}" in chart.inner_text(), 10)
        assert "Grad-CAM: No Finding" not in chart.inner_text()
        _press(page, "o", lambda: "Radiograph" in chart.inner_text())
        _press(page, "o", lambda: "Grad-CAM:" in chart.inner_text())
    before = chart.screenshot()
    _press(page, "i", lambda: chart.screenshot() != before)
    _press(page, "k", lambda: _focused(page) == labels[0])

    # every row marked with P/A (the focus walks down): one finding and "No Finding" present
    present = {next(lab for lab in labels if lab != "No Finding"), "No Finding"}
    for i, label in enumerate(labels):
        key = "p" if label in present else "a"
        if i + 1 < len(labels):
            _press(page, key, lambda i=i: _focused(page) == labels[i + 1])
        else:  # the last row keeps the focus
            page.keyboard.press(key)
            page.wait_for_timeout(1000)
            wait_idle(page)
    shot(page, "20_contradiction_marked")
    stored_before = sorted(verdict_rows(site["db"], sid, "alice"))
    page.keyboard.press("Control+Enter")
    toast = page.get_by_test_id("stToast").filter(has_text="'No Finding' is marked present together with")
    toast.wait_for()
    box = toast.bounding_box()
    assert box["y"] >= 0 and box["y"] + box["height"] <= 720, f"the refusal is off screen: {box}"
    assert sorted(verdict_rows(site["db"], sid, "alice")) == stored_before, "a contradictory verdict was stored"
    assert _study_on_screen(page) == sid
    shot(page, "21_contradiction_refused")

    page.get_by_text("All scores (TTA spread, threshold basis)").click()
    grid = page.get_by_test_id("stDataFrame").filter(has_text="TTA spread").first
    grid.wait_for()
    wait_idle(page)
    assert poll(lambda: grid.locator("[role=row]").count() >= 16, 10)  # header + 15 labels
    sizes = grid.locator(".dvn-scroller").evaluate(
        "e => [e.scrollWidth, e.clientWidth, e.scrollHeight, e.clientHeight]"
    )
    assert sizes[0] <= sizes[1] + 1 and sizes[2] <= sizes[3] + 1, f"the scores table scrolls: {sizes}"
    shot(page, "22_all_scores")
    context.close()


def test_a_click_on_the_image_places_the_focused_finding(site, browser):
    """The optional point: M, then a click on the image, places the ▶ finding there (✕ in its row,
    a mark on the image), marks it present, and is stored with the verdict as fractions
    of the image; the other rows marked absent with A."""
    from sqlalchemy import create_engine, text

    context, page = _page(browser, site)
    sid = _unread_by(site, "alice")[-1]
    _open(page, site, sid)
    labels = _panel_labels(page)
    target = next(lab for lab in labels if lab != "No Finding")
    chart = page.get_by_test_id("stPlotlyChart").first
    for i, label in enumerate(labels):  # down the rows: the target placed, every other absent
        last = i + 1 == len(labels)
        if label == target:
            _press(page, "m", lambda: "Click where the ▶ finding is" in chart.inner_text())  # marking mode
            picture = chart.locator("g.imagelayer image").first
            box = picture.bounding_box()
            page.mouse.click(box["x"] + 0.3 * box["width"], box["y"] + 0.6 * box["height"])
            assert poll(lambda: "✕" in page.locator(".st-key-focus_row").inner_text(), 15), "no mark in the row"
            wait_idle(page)
            assert "Click where" not in chart.inner_text()  # one click, one point: marking mode ends
            shot(page, "29_point_marked")
            if not last:
                _press(page, "j", lambda i=i: _focused(page) == labels[i + 1])
        elif not last:
            _press(page, "a", lambda i=i: _focused(page) == labels[i + 1])
        else:  # the last row keeps the focus
            page.keyboard.press("a")
            page.wait_for_timeout(1000)
            wait_idle(page)
    page.keyboard.press("Control+Enter")
    page.get_by_text(f"Saved your verdict on study {sid}").wait_for()
    engine = create_engine(site["db"])
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "select v.present, v.mark_x, v.mark_y from verdicts v join users u on u.id = v.reviewer_id "
                "where u.username = 'alice' and v.study_id = :s and v.label = :l"
            ),
            {"s": sid, "l": target},
        ).one()
    engine.dispose()
    assert row.present and row.mark_x == pytest.approx(0.3, abs=0.03) and row.mark_y == pytest.approx(0.6, abs=0.03)
    context.close()


def test_dicom_window_sliders_step_visibly(site, browser):
    """Problem 8: an arrow key moves the window centre by ~1/200 of the value range, not 0.01."""
    from sqlalchemy import create_engine, text

    engine = create_engine(site["db"])
    with engine.connect() as conn:
        sid = conn.execute(text("select id from studies where original_name = 'twelve_bit.dcm'")).scalar()
    engine.dispose()
    context, page = _page(browser, site)
    _open(page, site, sid, form=False)  # the viewer is the same whether alice may read it or has read it
    page.get_by_test_id("stPopover").get_by_role("button", name="Window").click()
    page.get_by_text("Window centre").wait_for()
    centre = page.get_by_test_id("stPopoverBody").locator("input[type=range]").first
    low, high, before = (float(centre.get_attribute(a)) for a in ("min", "max", "value"))
    assert high - low >= 4000  # the 12-bit file's value range
    centre.focus()
    page.keyboard.press("ArrowLeft")
    assert poll(lambda: float(centre.get_attribute("value")) != before, 10)
    step = before - float(centre.get_attribute("value"))
    assert step == pytest.approx(round((high - low) / 200), abs=1), (step, low, high)
    shot(page, "23_window_popover")
    context.close()


def test_double_click_on_normal_study_cannot_save_the_next(site, browser):
    """Problem 1: after a save the next study opens at the top with a toast naming the saved
    study; a double click on "Normal study" never records verdicts for the study it opens."""
    context, page = _page(browser, site)
    go(page, "Worklist", "Worklist")
    page.keyboard.press("j")  # Read next
    page.get_by_role("heading", name=HEADING).wait_for()
    page.get_by_text("Your verdict", exact=True).wait_for()
    wait_idle(page)
    first = _study_on_screen(page)
    page.wait_for_timeout(1600)  # a reader looks at the image before saving
    page.get_by_role("button", name="Normal study").first.dblclick()
    page.get_by_text(f"Saved your verdict on study {first}").wait_for()
    assert poll(lambda: len(verdict_rows(site["db"], first, "alice")) == 15, 15)
    page.wait_for_timeout(3000)  # anything the second click could have caused has happened
    wait_idle(page)
    if page.get_by_role("heading", name=HEADING).count():
        opened = _study_on_screen(page)
        assert opened != first
        saved = verdict_rows(site["db"], opened, "alice")
        assert saved == [], "the double click saved verdicts on a study not yet displayed"
    top = page.evaluate("() => Math.max(window.scrollY, document.querySelector('[data-testid=stMain]').scrollTop)")
    assert top == 0, "the next study did not open at the top"
    shot(page, "24_after_double_click")
    context.close()


def test_second_readers_read_next_never_returns_a_study_they_read(site, browser):
    """Problems 3 and 10: Home names the full model; bob's "Second read" queue lists studies
    alice read; each "Read next" (J on the worklist) opens a study bob has not read, never
    one he just saved, until Review says nothing waits for him."""
    card = json.loads((DEFAULT_MODEL / "model_card.json").read_text())
    context, page = _page(browser, site, "bob")
    page.get_by_text(card["name"], exact=True).wait_for()  # the full model name on Home
    go(page, "Worklist", "Worklist")
    page.get_by_test_id("stButtonGroup").get_by_text("Second read").click()
    page.get_by_text(re.compile(r"^[1-9]\d* studies shown")).wait_for()  # alice's reads wait for a second
    shot(page, "25_second_read_queue")
    seen: list[int] = []
    nothing = page.get_by_text("Nothing waits for your read")
    heading = page.get_by_role("heading", name=HEADING)
    for _ in range(len(site["done"]) + 5):
        go(page, "Worklist", "Worklist")
        wait_idle(page)
        page.keyboard.press("j")
        assert poll(lambda: nothing.count() > 0 or heading.count() > 0, 20)
        if nothing.count():
            break
        page.get_by_text("Your verdict", exact=True).wait_for()
        wait_idle(page)
        sid = _study_on_screen(page)
        assert sid not in seen, f"Read next reopened study {sid}, which bob has read"
        assert verdict_rows(site["db"], sid, "bob") == []
        page.wait_for_timeout(1600)
        page.keyboard.press("n")  # Normal study, save and next
        page.get_by_text(f"Saved your verdict on study {sid}").wait_for()
        assert poll(lambda sid=sid: len(verdict_rows(site["db"], sid, "bob")) == 15, 15)
        seen.append(sid)
    else:
        pytest.fail("Read next kept returning studies")
    assert set(seen) == set(_done(site)), "bob's queue ended before every analysed study had his read"
    page.goto(f"{site['url']}/review")
    page.get_by_text("Nothing waits for your review").wait_for()
    shot(page, "26_second_reader_done")
    context.close()


def test_threshold_save_refused_on_too_few_positives(site, browser):
    """Problem 7: operating points show n, CI and the current threshold; saving a threshold
    version on a handful of studies is refused with the reason; counts are integers."""
    context, page = _page(browser, site)
    go(page, "Analytics", "Cohort analytics")
    page.get_by_text("studies with ground truth").first.wait_for()
    wait_idle(page)
    assert page.get_by_text(re.compile(r"TP \d+\.\d")).count() == 0  # counts print as integers
    page.get_by_role("tab", name="Operating points").click()
    points = page.get_by_test_id("stDataFrame").filter(has_text="current_threshold").first
    points.wait_for()
    headers = " ".join(points.locator("[role=columnheader]").all_inner_texts())
    for column in ("n", "positives", "current_threshold", "sensitivity_ci"):
        assert column in headers, f"operating points lack {column!r}: {headers}"
    page.get_by_role("button", name="Save as a new threshold version").click()
    page.get_by_text(re.compile(r"Not saved: no finding has 20 positives")).wait_for()
    shot(page, "27_threshold_refused")
    context.close()


def test_admin_users_roles_and_audit_pick_list(site, browser):
    """Problem 9: a new user is in the users table at once; a role change is applied and
    audited; the audit filter is a pick-list of action names."""
    context, page = _page(browser, site)
    go(page, "Admin", "Administration")
    form = page.get_by_test_id("stForm").filter(has_text="Create user")
    form.get_by_label("User name").fill("carol")
    form.get_by_label("Initial password").fill(PASSWORD)
    form.get_by_role("button", name="Create user").click()
    page.get_by_text("Created reviewer carol").wait_for()
    users = page.get_by_test_id("stDataFrame").first
    assert poll(lambda: "carol" in users.locator("[role=gridcell]").all_inner_texts(), 10)
    page.get_by_test_id("stSelectbox").filter(has_text="Account").click()
    page.get_by_role("option", name="carol").click()
    page.get_by_test_id("stSelectbox").filter(has_text="Action").first.click()
    page.get_by_role("option", name="make admin").click()
    wait_idle(page)
    page.get_by_role("button", name="Apply").click()
    page.get_by_text("carol is now admin").wait_for()
    assert poll(lambda: "admin" in _user_row(users, "carol"), 10)
    page.get_by_role("tab", name="Audit trail").click()
    page.get_by_test_id("stSelectbox").filter(has_text="Action").last.click()
    options = page.get_by_role("option").all_inner_texts()
    assert {"user_role_changed", "user_created", "review_submitted"} <= set(options), options
    shot(page, "28_admin_audit_actions")
    context.close()


def _user_row(grid, name: str) -> list[str]:
    cells = grid.locator("[role=gridcell]").all_inner_texts()
    i = cells.index(name) if name in cells else -1
    return cells[i - 1 : i + 4] if i >= 0 else []

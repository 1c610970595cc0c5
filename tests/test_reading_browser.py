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
    verdict_rows,
    wait_done,
    wait_idle,
)
from tests.conftest import DEFAULT_MODEL, SHARED
from tests.reader_page import (
    focused,
    labels,
    open_study,
    panel,
    press_read_next,
    reader_page,
    states,
    viewport,
    wait_status,
    wait_study,
)

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
    return reader_page(browser, site, user)


def _study_on_screen(page) -> int:
    return int(page.get_by_role("heading", name=HEADING).inner_text().split()[-1])


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


def test_keyboard_walks_the_findings_and_no_finding_stays_exclusive(site, browser):
    """J/K move the focus and the overlay follows it ("No Finding" leaves it where it was);
    O and I toggle overlay and invert; "No Finding" present clears every finding and a
    finding present clears "No Finding"; the scores table shows every row and column."""
    context, page = _page(browser, site)
    sid = _unread_by(site, "alice")[0]
    open_study(page, site, sid)
    view = viewport(page)
    box = view.bounding_box()
    assert box["height"] >= 450 and box["width"] >= 700, f"the image is small at 1280x720: {box}"
    names = labels(page)
    assert len(names) == 15 and focused(page) == names[0]
    overlay_on = view.get_attribute("data-overlay") != ""
    page.keyboard.press("j")
    assert focused(page) == names[1]
    if overlay_on:
        shown = names[1] if names[1] != "No Finding" else names[0]
        assert view.get_attribute("data-overlay") == shown
        page.keyboard.press("o")
        assert view.get_attribute("data-overlay") == ""
        page.keyboard.press("o")
        assert view.get_attribute("data-overlay") == shown
    before = view.locator("canvas").screenshot()
    page.keyboard.press("i")
    assert (
        poll(lambda: view.locator("canvas").screenshot() != before, 5) and view.get_attribute("data-invert") == "true"
    )
    finding = next(n for n in names if n != "No Finding")
    while focused(page) != finding:
        page.keyboard.press("k" if names.index(focused(page)) > names.index(finding) else "j")
    page.keyboard.press("p")
    assert states(page)[finding] == "present"
    while focused(page) != "No Finding":
        page.keyboard.press("k" if names.index(focused(page)) > names.index("No Finding") else "j")
    page.keyboard.press("p")
    marked = states(page)
    assert marked["No Finding"] == "present" and all(marked[n] == "absent" for n in names if n != "No Finding")
    shot(page, "20_no_finding_exclusive")
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
    """M, then a click on the image, places the focused finding there (✕ in its row, a mark
    on the image), marks it present, and is stored with the read as fractions of the image."""
    from sqlalchemy import create_engine, text

    context, page = _page(browser, site)
    sid = _unread_by(site, "alice")[-1]
    open_study(page, site, sid)
    target = next(n for n in labels(page) if n != "No Finding")
    while focused(page) != target:
        page.keyboard.press("j")
    page.keyboard.press("m")
    canvas = viewport(page).locator("canvas")
    zoom = float(viewport(page).get_attribute("data-zoom"))
    pan_x, pan_y = (float(v) for v in viewport(page).get_attribute("data-pan").split(","))
    box = canvas.bounding_box()
    cols, rows = (int(v) for v in viewport(page).get_attribute("data-size").split(","))
    page.mouse.click(box["x"] + pan_x + 0.3 * cols * zoom, box["y"] + pan_y + 0.6 * rows * zoom)
    assert poll(lambda: states(page)[target] == "present", 5)
    assert "✕" in panel(page).locator(f'[data-label="{target}"]').inner_text()
    shot(page, "29_point_marked")
    page.wait_for_timeout(1000)
    page.keyboard.press("Control+Enter")
    wait_status(page, f"Saved your verdict on study {sid}")
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
    assert row.present and row.mark_x == pytest.approx(0.3, abs=0.01) and row.mark_y == pytest.approx(0.6, abs=0.01)
    context.close()


def test_chest_presets_by_key_on_a_twelve_bit_dicom(site, browser):
    """1, 2, 3 put the lung, mediastinum and bone windows of the file's own values on the
    image; 0 goes back to the file's window."""
    from sqlalchemy import create_engine, text

    engine = create_engine(site["db"])
    with engine.connect() as conn:
        sid = conn.execute(text("select id from studies where original_name = 'twelve_bit.dcm'")).scalar()
    engine.dispose()
    context, page = _page(browser, site)
    open_study(page, site, sid)  # the viewer is the same whether alice may read it or has read it
    view = viewport(page)
    file_window = view.get_attribute("data-window")
    seen = []
    for key in "123":
        page.keyboard.press(key)
        assert poll(lambda: view.get_attribute("data-window") not in (file_window, *seen), 5)
        seen.append(view.get_attribute("data-window"))
    centres = [float(w.split(",")[0]) for w in seen]
    assert centres == sorted(centres) and centres[-1] - centres[0] > 100  # lung < mediastinum < bone, 12-bit values
    page.keyboard.press("0")
    assert poll(lambda: view.get_attribute("data-window") == file_window, 5)
    shot(page, "23_bone_window")
    context.close()


def test_double_press_on_normal_cannot_save_the_next(site, browser):
    """After a save the next study opens with a note naming the saved study; a double click
    on "Normal" never records verdicts for the study it opens."""
    context, page = _page(browser, site)
    go(page, "Worklist", "Worklist")
    press_read_next(page)
    first = wait_study(page)
    wait_idle(page)
    page.wait_for_timeout(1100)  # a reader looks at the image before saving
    page.get_by_role("button", name="Normal (N)").dblclick()
    wait_status(page, f"Saved your verdict on study {first}")
    assert poll(lambda: len(verdict_rows(site["db"], first, "alice")) == 15, 15)
    page.wait_for_timeout(2000)  # anything the second click could have caused has happened
    if panel(page).count():
        opened = int(panel(page).get_attribute("data-study"))
        assert opened != first
        assert verdict_rows(site["db"], opened, "alice") == [], "the double click saved a study not yet read"
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
        press_read_next(page)
        assert poll(lambda: nothing.count() > 0 or heading.count() > 0, 20)
        if nothing.count():
            break
        sid = wait_study(page)
        wait_idle(page)
        assert sid not in seen, f"Read next reopened study {sid}, which bob has read"
        assert verdict_rows(site["db"], sid, "bob") == []
        page.wait_for_timeout(1100)
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

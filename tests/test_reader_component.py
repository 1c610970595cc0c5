"""The reading workstation (issue 21) in real Chromium at 1280x720 on the real app, on a site
of its own (double reading, 26 real radiographs and the real CR DICOM): the viewer and the
verdict panel are one browser component; keys act in the browser and never rerun the
page; a submission is stored for the study it names. Screenshots: tests/artifacts/40_...
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from core.labels import NO_FINDING
from core.verdict_rules import present, verdicts_from_states
from tests.browser_app import (
    BROWSER_MARKS,
    create_account,
    go,
    ingest,
    poll,
    running_app,
    shot,
    wait_done,
    wait_idle,
)
from tests.conftest import SHARED
from tests.reader_page import (
    focused,
    labels,
    open_study,
    panel,
    reader_page,
    states,
    status,
    stored_truths,
    viewport,
    wait_status,
    wait_study,
)

pytestmark = BROWSER_MARKS
DICOM = SHARED / "dicom" / "cr_chest.dcm"
PNG = SHARED / "nih" / "full" / "00000001_000.png"
N_PNG = 25
SEEDED = 150
READERS = {"erin": "reviewer", "fay": "reviewer", "gus": "admin", "hal": "reviewer", "ida": "admin"}
# counts the page's script runs (Streamlit marks its root while a run is going on)
RERUN_COUNTER = """() => { window.__reruns = 0;
  const app = document.querySelector('[data-testid=stApp]');
  new MutationObserver(() => { if (app.dataset.testScriptState === 'running') window.__reruns++; })
    .observe(app, {attributes: true, attributeFilter: ['data-test-script-state']}); }"""


@pytest.fixture(scope="module")
def site(tmp_path_factory, browser):
    """A site of its own, so that the reads made here (every study read twice by the end of
    the concurrent readers) leave the other browser tests' queues as they expect them."""
    files = [DICOM, PNG, *sorted((SHARED / "nih" / "dev512").glob("*.png"))[: N_PNG - 1]]
    with running_app(tmp_path_factory.mktemp("reader") / "data", CXR_READS_REQUIRED="2") as app:
        page = browser.new_page()
        page.goto(app["url"])  # the first script run starts the embedded worker
        page.get_by_label("User name").wait_for(timeout=30000)
        page.close()
        ingest(app, files)
        rows = wait_done(app["db"], len(files), timeout=400)
        _seed_more(app["data"], SEEDED)  # enough reads for four readers for three minutes
        for name, role in READERS.items():
            create_account(app["data"], name, role)
        by_name = {r.original_name: r.id for r in rows}
        done = sorted(r.id for r in rows if r.status == "done")
        yield {**app, "done": done, "dicom": by_name[DICOM.name], "png": by_name[PNG.name]}


def _seed_more(data, n: int) -> None:
    """``n`` more analysed studies (scores generated, a real radiograph each), written by
    the product's own writers into the running site's database."""
    from bench.seed import seed
    from db.bootstrap import open_database
    from tests.conftest import make_settings

    settings = make_settings(data, reads_required=2)
    engine = open_database(settings)
    try:
        seed(engine, settings.data_dir, PNG, n, triage=settings.triage(), seed=21)
    finally:
        engine.dispose()


def _model(keys: str, names: list[str]) -> tuple[int, dict[str, str]]:
    """What the panel should show after ``keys``: the focus and every row's state."""
    focus, marked = 0, dict.fromkeys(names, "unset")
    for key in keys:
        if key in "jk":
            focus = max(0, min(len(names) - 1, focus + (1 if key == "j" else -1)))
            continue
        label = names[focus]
        marked[label] = "present" if key == "p" else "absent"
        if key == "p" and label == NO_FINDING:
            marked.update({n: "absent" for n in names if n != NO_FINDING})
        elif key == "p" and marked[NO_FINDING] == "present":
            marked[NO_FINDING] = "absent"
        focus = min(len(names) - 1, focus + 1)
    return focus, marked


def _flags(page) -> dict[str, bool]:
    rows = panel(page).locator("[data-label]")
    return dict(rows.evaluate_all("rs => rs.map(r => [r.dataset.label, r.classList.contains('flagged')])"))


def _read_next(page, site) -> int | None:
    """Open Review from its link without a study: the reader's next study, claimed."""
    page.goto(f"{site['url']}/review")
    nothing = page.get_by_text("Nothing waits for your review")
    assert poll(lambda: nothing.count() > 0 or panel(page).count() > 0, 60)
    return None if nothing.count() else wait_study(page)


def _check_stored(site, sid: int, reader: str, flags: dict[str, bool], marked: dict[str, str]) -> None:
    truths = stored_truths(site["db"], sid, reader)
    verdicts = verdicts_from_states(marked, flags)
    assert truths == {lab: present(flags[lab], v) for lab, v in verdicts.items()}, f"study {sid}: stored read differs"


@pytest.mark.parametrize(("reader", "interval_ms"), [("erin", 20), ("fay", 150)])
def test_200_scripted_keys_over_10_studies_none_lost(site, browser, reader, interval_ms):
    """20 keys a study (19 of J/K/P/A, then Ctrl+Enter) over 10 studies at a fixed
    interval; each study's keys are typed straight after the last one's Ctrl+Enter (kept
    while it saves, applied when the next study shows). Every study's panel and stored read
    equal what its keys say, and no key reran the page (only the 10 submissions did)."""
    rng = random.Random(interval_ms)
    context, page = reader_page(browser, site, reader)
    current = _read_next(page, site)
    wait_idle(page)
    page.evaluate(RERUN_COUNTER)
    previous: tuple[int, dict[str, bool], dict[str, str]] | None = None
    typed = 0
    for n in range(10):
        keys = "".join(rng.choice("jjkppaaa") for _ in range(19))
        for key in keys:
            page.keyboard.press(key)
            page.wait_for_timeout(interval_ms)
        if previous is not None:  # these keys were typed while the last read saved
            done = str(previous[0])
            assert poll(lambda done=done: panel(page).get_attribute("data-study") != done, 30)
            current = wait_study(page)
            assert f"Saved your verdict on study {previous[0]}" in status(page), status(page)
            _check_stored(site, previous[0], reader, previous[1], previous[2])
        names = labels(page)
        focus, expected = _model(keys, names)
        assert poll(lambda expected=expected: states(page) == expected, 10), (
            f"study {current}: a key was lost or misapplied"
        )
        assert focused(page) == names[focus]
        if n == 0:
            shot(page, f"42_keys_{interval_ms}ms_marked")
        page.wait_for_timeout(1100)  # the reader looks before submitting (the double-press guard)
        page.keyboard.press("Control+Enter")
        typed += 20
        previous = (current, _flags(page), expected)
    wait_status(page, f"on study {previous[0]}")
    _check_stored(site, previous[0], reader, previous[1], previous[2])
    assert typed == 200
    reruns = page.evaluate("window.__reruns")
    assert reruns <= 10, f"{reruns} page runs for 200 keys and 10 submissions"
    context.close()


def test_a_click_on_a_row_then_ctrl_enter_submits(site, browser):
    context, page = reader_page(browser, site, "gus")
    sid = _read_next(page, site)
    names = labels(page)
    target = next(n for n in names[3:] if n != NO_FINDING)
    panel(page).locator(f'[data-label="{target}"]').click()
    assert focused(page) == target
    panel(page).locator(f'[data-label="{target}"] .state').click()  # the state pill: present
    assert states(page)[target] == "present"
    page.get_by_placeholder("Note (optional)").click()  # focus in a control: the keys still act
    page.keyboard.press("Escape")
    page.wait_for_timeout(1000)
    page.keyboard.press("Control+Enter")
    wait_status(page, f"Saved your verdict on study {sid}")
    truths = stored_truths(site["db"], sid, "gus")
    assert truths[target] and not truths[NO_FINDING] and sum(truths.values()) == 1
    shot(page, "43_row_click_saved")
    context.close()


def test_viewer_window_drag_one_to_one_and_a_measurement_in_mm(site, browser):
    """A drag changes the window and the rendered pixels; Z shows native pixels (the canvas
    equals the windowed file pixel for pixel); a length drawn across the real CR DICOM
    reads its PixelSpacing within 1%."""
    import pydicom
    from PIL import Image

    context, page = reader_page(browser, site, "hal")
    open_study(page, site, site["png"])
    view = viewport(page)
    canvas = view.locator("canvas")
    box = canvas.bounding_box()
    before_window, before = view.get_attribute("data-window"), canvas.screenshot()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2 + 120, box["y"] + box["height"] / 2 + 60, steps=6)
    page.mouse.up()
    assert poll(lambda: view.get_attribute("data-window") != before_window, 5)
    assert canvas.screenshot() != before, "a window drag did not change the rendered pixels"
    page.keyboard.press("0")  # back to the file's window
    page.keyboard.press("o")  # overlay off: the pixels are the image's alone
    page.keyboard.press("z")
    assert poll(lambda: float(view.get_attribute("data-zoom")) == 1.0, 5)
    shot(page, "44_one_to_one")
    pan_x, pan_y = (float(v) for v in view.get_attribute("data-pan").split(","))
    assert pan_x == int(pan_x) and pan_y == int(pan_y)
    sx, sy = 200, 150  # a block of screen pixels inside the image
    block = canvas.evaluate(f"c => Array.from(c.getContext('2d').getImageData({sx}, {sy}, 40, 30).data)")
    shown = np.array(block, dtype=np.int32).reshape(30, 40, 4)[..., 0]
    grey = np.asarray(Image.open(PNG).convert("L"), dtype=np.float64)
    lo, hi = grey.min(), grey.max()
    x0, y0 = sx - int(pan_x), sy - int(pan_y)
    expected = np.round(255 * (grey[y0 : y0 + 30, x0 : x0 + 40] - lo) / (hi - lo))
    assert np.abs(shown - expected).max() <= 1, "1:1 is not the file's pixels"

    open_study(page, site, site["dicom"])
    view = viewport(page)
    canvas = view.locator("canvas")
    box = canvas.bounding_box()
    zoom = float(view.get_attribute("data-zoom"))
    pan_x, pan_y = (float(v) for v in view.get_attribute("data-pan").split(","))
    page.keyboard.press("l")
    a = (box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.35)
    b = (box["x"] + box["width"] * 0.7, box["y"] + box["height"] * 0.75)
    page.mouse.move(*a)
    page.mouse.down()
    page.mouse.move(*b, steps=8)
    page.mouse.up()
    assert poll(lambda: bool(view.get_attribute("data-measure-mm")), 5)
    measured = float(view.get_attribute("data-measure-mm"))
    ds = pydicom.dcmread(DICOM, stop_before_pixels=True)
    row_mm, col_mm = (float(v) for v in (ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")))

    def to_image(p):
        return (p[0] - box["x"] - pan_x) / zoom, (p[1] - box["y"] - pan_y) / zoom

    (ax, ay), (bx, by) = to_image(a), to_image(b)
    expected_mm = float(np.hypot((bx - ax) * col_mm, (by - ay) * row_mm))
    assert measured == pytest.approx(expected_mm, rel=0.01)
    shot(page, "45_measurement_mm")
    page.keyboard.press("1")  # the lung preset
    assert poll(lambda: view.get_attribute("data-window") != "", 5)
    context.close()


def test_invalid_links_show_only_the_reason(site, browser):
    context, page = reader_page(browser, site, "hal")
    for link in ("-1", "0", "abc", "99999999999999999999"):
        page.goto(f"{site['url']}/review?study={link}")
        page.get_by_text("The study link is not valid").wait_for()
        wait_idle(page)
        assert panel(page).count() == 0 and page.get_by_role("heading", name="Review: study").count() == 0
    context.close()


def test_an_admin_and_a_reviewer_who_disagree_send_the_study_to_another_admin(site, browser):
    gus_context, gus = reader_page(browser, site, "gus")  # admin
    sid = _read_next(gus, site)
    first = next(n for n in labels(gus) if n != NO_FINDING)
    gus.wait_for_timeout(1100)
    while focused(gus) != first:
        gus.keyboard.press("j")
    gus.keyboard.press("p")
    gus.keyboard.press("Control+Enter")
    wait_status(gus, f"Saved your verdict on study {sid}")
    hal_context, hal = reader_page(browser, site, "hal")  # reviewer: normal study
    open_study(hal, site, sid)
    hal.wait_for_timeout(1100)
    hal.keyboard.press("n")
    wait_status(hal, f"Saved your verdict on study {sid}")
    ida_context, ida = reader_page(browser, site, "ida")  # another admin
    go(ida, "Worklist", "Worklist")
    ida.get_by_test_id("stButtonGroup").get_by_text("Adjudication").click()
    wait_idle(ida)
    grid = ida.get_by_test_id("stDataFrame").first
    assert poll(lambda: str(sid) in grid.locator("[role=gridcell]").all_inner_texts(), 20)
    shot(ida, "46_adjudication_queue")
    for context in (gus_context, hal_context, ida_context):
        context.close()


def test_four_readers_at_once_for_three_minutes(site, browser):
    """Four readers read at once (each: Review, look 1.1 s, N, all four submitting at
    about the same moment) for three minutes with CXR_READS_REQUIRED=2: no study above 2
    reads, every "Saved" seen is stored, no error page."""
    import time

    from sqlalchemy import create_engine, text

    readers = ["erin", "fay", "gus", "hal"]
    pages = {r: reader_page(browser, site, r) for r in readers}
    saved = dict.fromkeys(readers, 0)
    current = {r: _read_next(p, site) for r, (_, p) in pages.items()}
    deadline = time.time() + 180
    while time.time() < deadline and any(current.values()):
        time.sleep(1.1)
        for r, (_, page) in pages.items():
            if current[r]:
                page.keyboard.press("n")  # every reader submits at about the same moment
        for r, (_, page) in pages.items():
            sid = current[r]
            if not sid:
                continue
            assert poll(lambda page=page, sid=sid: f"on study {sid}" in status(page), 60), status(page)
            if "Saved" in status(page):
                saved[r] += 1
            assert page.get_by_test_id("stException").count() == 0
            current[r] = _read_next(page, site)
    engine = create_engine(site["db"])
    with engine.connect() as conn:
        reads = dict(conn.execute(text("select study_id, count(*) from verdict_sets group by study_id")).all())
        per_reader = dict(
            conn.execute(
                text(
                    "select u.username, count(*) from verdict_sets v join users u on u.id = v.reviewer_id "
                    "group by u.username"
                )
            ).all()
        )
    engine.dispose()
    assert max(reads.values()) <= 2, f"a study got more than 2 reads: {reads}"
    for r in readers:
        assert per_reader.get(r, 0) >= saved[r], f"{r}: {saved[r]} saves seen, {per_reader.get(r, 0)} stored"
    assert sum(saved.values()) >= 8
    for _, (context, _) in pages.items():
        context.close()

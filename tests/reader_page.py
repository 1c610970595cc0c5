"""Driving the reading component in Chromium: open a study, read the panel's data attributes
(``data-focused``, each row's ``data-label`` and ``data-state``) and the viewport's
(``data-window``, ``data-zoom``, ``data-overlay``, ``data-measure-mm``)."""

from __future__ import annotations

import re

from tests.browser_app import PASSWORD, poll, sign_in, verdict_rows, wait_idle

HEADING = re.compile(r"^Review: study \d+$")


def reader_page(browser, site, user: str = "alice", width: int = 1280, height: int = 720):
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(30000)
    sign_in(page, site["url"], PASSWORD, user)
    page.get_by_text("Queued").first.wait_for()
    return context, page


def panel(page):
    return page.get_by_test_id("verdict-panel")


def viewport(page, n: int = 0):
    return page.get_by_test_id("reader-viewport").nth(n)


def wait_study(page, sid: int | None = None) -> int:
    """Wait until the panel shows a study (``sid`` when given) and its image is drawn."""
    selector = f'[data-testid="verdict-panel"][data-study="{sid}"]' if sid else '[data-testid="verdict-panel"]'
    page.locator(selector).wait_for()
    page.locator('[data-testid="reader-viewport"][data-ready="true"]').first.wait_for()
    return int(panel(page).get_attribute("data-study"))


def press_read_next(page) -> None:
    """Press J on the worklist once its "Read next" button is drawn and the script run is over:
    the worklist's heading is drawn before the button, and a key pressed before the button's
    shortcut is bound does nothing."""
    page.get_by_role("button", name=re.compile(r"^Read next")).wait_for()
    wait_idle(page)
    page.keyboard.press("j")


def open_study(page, site, sid: int) -> None:
    page.goto(f"{site['url']}/review?study={sid}")
    page.get_by_role("heading", name=f"Review: study {sid}", exact=True).wait_for()
    wait_study(page, sid)
    wait_idle(page)


def focused(page) -> str:
    return panel(page).get_attribute("data-focused")


def labels(page) -> list[str]:
    return panel(page).locator("[data-label]").evaluate_all("rows => rows.map(r => r.dataset.label)")


def states(page) -> dict[str, str]:
    return dict(
        panel(page).locator("[data-label]").evaluate_all("rows => rows.map(r => [r.dataset.label, r.dataset.state])")
    )


def status(page) -> str:
    """The reading component's status line; once nothing waits for the reader (the panel is
    gone), the page's own message of what became of the last submission."""
    # read without waiting: between a count and a read the component may remount after a
    # save, and a waiting read of the detached line then hung for Playwright's 30 s
    line = page.get_by_test_id("reader-status").all_inner_texts()
    if line:
        return " ".join(line)
    alerts = page.get_by_test_id("stAlert")
    return " ".join(alerts.all_inner_texts()) if alerts.count() else ""


def wait_status(page, text: str, timeout: float = 30) -> None:
    assert poll(lambda: text in status(page), timeout), f"no {text!r} in the status line: {status(page)!r}"


def stored_truths(db_url: str, study_id: int, username: str) -> dict[str, bool]:
    """What the reader's stored verdict rows say is present (label -> present)."""
    return {row.label: bool(row.present) for row in verdict_rows(db_url, study_id, username)}

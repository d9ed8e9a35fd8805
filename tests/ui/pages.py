"""The dashboard's DOM as the tests see it (contract 2 of issue 18): one place per name, so a mismatch between
the tests and the page is fixed here once. Everything waits with Playwright's auto-retrying `expect`."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Locator, Page, expect

from tests.ui.servers import UiServer

STATES = ("waiting", "queued", "claimed", "failed", "done", "dead", "cancelled")
NAV_LINKS = {"Overview": "#/", "Dead letters": "#/dead", "Recurring": "#/recurring", "Workers": "#/workers"}

# Inputs, selects and text areas without an accessible label: no <label>, no aria-label(ledby).
UNLABELLED_JS = """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
    .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                  && !el.getAttribute('aria-labelledby'))
    .map(el => el.outerHTML.slice(0, 200))"""
# Wider than the viewport at the page level (a table may scroll inside its own wrapper).
OVERFLOW_JS = """() => ({scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth,
                         body: document.body.scrollWidth})"""


def heading(page: Page) -> Locator:
    return page.locator("main#main h1")


def open_route(page: Page, server: UiServer, route: str, title: str) -> None:
    """Load the dashboard at a hash route (or move the open one there) and wait until its page is drawn (its
    <h1>) and a data refresh has happened since."""
    before = refreshed(page) if page.url.startswith(server.url) else 0
    page.goto(server.ui(route))
    expect(heading(page)).to_have_text(title)
    wait_for_refresh(page, after=before)


def refreshed(page: Page) -> int:
    return int(page.evaluate("() => Number(document.body.dataset.refreshed || 0)"))


def wait_for_refresh(page: Page, after: int | None = None) -> None:
    """Until the app has refreshed its data past `after` (default: the count now, i.e. one more refresh)."""
    seen = refreshed(page) if after is None else after
    page.wait_for_function("n => Number(document.body.dataset.refreshed || 0) > n", arg=seen)


def mark_document(page: Page) -> None:
    """Tag the document, so `assert_not_reloaded` can tell a live update from a reload."""
    page.evaluate("() => { window.__tasquesTestMark = 'still here' }")


def assert_not_reloaded(page: Page) -> None:
    assert page.evaluate("() => window.__tasquesTestMark") == "still here", "the page was reloaded"


def nav_link(page: Page, name: str) -> Locator:
    return page.get_by_role("navigation", name="Main").get_by_role("link", name=name, exact=True)


def error_area(page: Page) -> Locator:
    return page.locator("#error[role=alert]")


# Overview


def queue_row(page: Page, queue: str) -> Locator:
    return page.get_by_role("table", name="Queues").locator(f'tr[data-queue="{queue}"]')


def count_cell(row: Locator, state: str) -> Locator:
    return row.locator(f'td[data-state="{state}"]')


def field_cell(row: Locator, field: str) -> Locator:
    return row.locator(f'td[data-field="{field}"]')


# Queue


def task_rows(page: Page) -> Locator:
    return page.get_by_role("table", name="Tasks").locator("tr[data-task-id]")


def task_row(page: Page, task_id: str) -> Locator:
    return page.get_by_role("table", name="Tasks").locator(f'tr[data-task-id="{task_id}"]')


# Task


def task_field(page: Page, field: str) -> Locator:
    """A field of the task page's `<dl aria-label="Fields">`, e.g. its state."""
    return page.locator(f'dl[aria-label="Fields"] [data-field="{field}"]')


def section(page: Page, name: str) -> Locator:
    return page.locator(f'section[aria-label="{name}"]')


def attempts(page: Page) -> Locator:
    return section(page, "Timeline").locator("ol li.attempt")


# Workers, dead letters, recurring


def worker_row(page: Page, worker: str) -> Locator:
    return page.get_by_role("table", name="Workers").locator(f'tr[data-worker-id="{worker}"]')


def dead_row(page: Page, queue: str, task_id: str) -> Locator:
    return page.get_by_role("table", name="Dead tasks").locator(f'tr[data-task-id="{task_id}"][data-queue="{queue}"]')


def recurring_row(page: Page, recurring_id: str) -> Locator:
    return page.get_by_role("table", name="Recurring tasks").locator(f'tr[data-recurring-id="{recurring_id}"]')


def button(scope: Page | Locator, name: str) -> Locator:
    return scope.get_by_role("button", name=name, exact=True)


def unlabelled_inputs(page: Page) -> list[Any]:
    found: list[Any] = page.evaluate(UNLABELLED_JS)
    return found

"""Every page of the dashboard, on each store: usable at phone width, every input labelled, and no requests to
the server once no page is open (the dashboard costs the API nothing while nobody looks)."""

from __future__ import annotations

import time
from pathlib import Path

from playwright.sync_api import Page

from tests.ui import pages as ui
from tests.ui.api import Api
from tests.ui.servers import UiServer

# Longer than the pages' 2 s refresh period: a page that still polled would be seen.
QUIET_SECONDS = 3.0


def routes(api: Api, queue: str) -> list[tuple[str, str]]:
    """Every page of the dashboard with something on it: (hash route, its <h1>)."""
    api.dead_task(queue, "mail-dead")  # first: its claim must get this task
    api.create_task(queue, "send-email", id="mail-1", args={"to": "someone@example.com"})
    return [
        ("/", "Overview"),
        (f"/queues/{queue}", f"Queue {queue}"),
        (f"/tasks/{queue}/mail-dead", f"Task {queue}/mail-dead"),
        ("/recurring", "Recurring tasks"),
        ("/workers", "Workers"),
        ("/dead", "Dead letters"),
    ]


def test_no_page_overflows_horizontally_at_phone_width(
    phone_page: Page, ui_server: UiServer, api: Api, queue: str
) -> None:
    wider = {}
    for route, title in routes(api, queue):
        ui.open_route(phone_page, ui_server, route, title)
        sizes = phone_page.evaluate(ui.OVERFLOW_JS)
        if sizes["scroll"] > sizes["client"]:
            wider[route] = sizes
    assert wider == {}, f"pages wider than the 390 px viewport (tables must scroll in their wrapper): {wider}"


def test_every_input_and_select_has_an_accessible_label(page: Page, ui_server: UiServer, api: Api, queue: str) -> None:
    unlabelled = {}
    for route, title in routes(api, queue):
        ui.open_route(page, ui_server, route, title)
        found = ui.unlabelled_inputs(page)
        if found:
            unlabelled[route] = found
    assert unlabelled == {}, f"inputs without a label: {unlabelled}"


def test_no_requests_reach_the_server_once_the_page_is_closed(
    page: Page, ui_server: UiServer, api: Api, queue: str, shot: Path
) -> None:
    api.create_task(queue, "k", id="t")
    ui.open_route(page, ui_server, "/", "Overview")
    loaded = api.http_requests_served()
    ui.wait_for_refresh(page)  # the open page polls: its next refresh reaches the server
    assert api.http_requests_served() > loaded

    page.screenshot(path=str(shot), full_page=True)
    page.close()
    time.sleep(0.5)  # a request already on the wire when the page went may still land
    closed = api.http_requests_served()
    time.sleep(QUIET_SECONDS)
    assert api.http_requests_served() == closed, "requests arrived after the page was closed"


_SET_VISIBILITY = """state => {
    Object.defineProperty(document, "visibilityState", {configurable: true, get: () => state});
    document.dispatchEvent(new Event("visibilitychange"));
}"""


def test_a_hidden_tab_makes_no_requests_and_refreshes_when_shown_again(
    page: Page, ui_server: UiServer, api: Api, queue: str
) -> None:
    api.create_task(queue, "k", id="t")
    ui.open_route(page, ui_server, "/", "Overview")
    ui.wait_for_refresh(page)

    page.evaluate(_SET_VISIBILITY, "hidden")
    time.sleep(0.5)  # a refresh already on the wire may still land
    hidden = api.http_requests_served()
    time.sleep(QUIET_SECONDS)
    assert api.http_requests_served() == hidden, "a hidden tab kept polling"

    page.evaluate(_SET_VISIBILITY, "visible")
    ui.wait_for_refresh(page)  # shown again: it refreshes at once and goes on polling
    assert api.http_requests_served() > hidden

"""Every page of the dashboard, on each store: usable at phone width, every input labelled, text at 4.5:1
contrast, focus visible from the keyboard, and no requests to the server once no page is open or while its tab
is hidden (the dashboard costs the API nothing while nobody looks)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def _on_every_page(
    page: Page, server: UiServer, pages: list[tuple[str, str]], check: Callable[[], Any]
) -> dict[str, Any]:
    """Route -> what `check` found wrong there (a falsy answer is nothing), opening each page in turn."""
    found = {}
    for route, title in pages:
        ui.open_route(page, server, route, title)
        if problem := check():
            found[route] = problem
    return found


def test_no_page_overflows_horizontally_at_phone_width(
    phone_page: Page, ui_server: UiServer, api: Api, queue: str
) -> None:
    def too_wide(sizes: dict[str, int]) -> dict[str, int] | None:
        return sizes if sizes["scroll"] > sizes["client"] else None

    wider = _on_every_page(
        phone_page, ui_server, routes(api, queue), lambda: too_wide(phone_page.evaluate(ui.OVERFLOW_JS))
    )
    assert wider == {}, f"pages wider than the 390 px viewport (tables must scroll in their wrapper): {wider}"


def test_every_input_and_select_has_an_accessible_label(page: Page, ui_server: UiServer, api: Api, queue: str) -> None:
    unlabelled = _on_every_page(page, ui_server, routes(api, queue), lambda: ui.unlabelled_inputs(page))
    assert unlabelled == {}, f"inputs without a label: {unlabelled}"


# The WCAG contrast ratio of each element's own text against the first opaque background behind it; returns
# the elements below 4.5:1 (selector-ish description, ratio). Colours come from getComputedStyle as rgb(a).
_LOW_CONTRAST = """() => {
    const rgba = (text) => (text.match(/[\\d.]+/g) || []).map(Number);
    const lum = ([r, g, b]) => {
        const lin = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
        return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
    };
    const background = (el) => {
        for (let e = el; e; e = e.parentElement) {
            const c = rgba(getComputedStyle(e).backgroundColor);
            if (c.length >= 3 && (c.length === 3 || c[3] === 1)) return c;
        }
        return [255, 255, 255];
    };
    const low = [];
    for (const el of document.querySelectorAll("body *")) {
        const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
        if (!own || !el.getClientRects().length || getComputedStyle(el).visibility === "hidden") continue;
        const fg = lum(rgba(getComputedStyle(el).color)), bg = lum(background(el));
        const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
        if (ratio < 4.5) low.push([el.tagName.toLowerCase() + (el.className ? "." + el.className : ""), ratio.toFixed(2)]);
    }
    return low;
}"""


def test_text_has_a_contrast_of_at_least_4_5_to_1(page: Page, ui_server: UiServer, api: Api, queue: str) -> None:
    low = _on_every_page(page, ui_server, routes(api, queue), lambda: page.evaluate(_LOW_CONTRAST))
    assert low == {}, f"text below 4.5:1 against its background: {low}"


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


_FOCUS_RING = """() => {
    const el = document.activeElement, style = el && getComputedStyle(el);
    if (!el || el === document.body) return null;
    return {tag: el.tagName.toLowerCase(), text: (el.textContent || "").trim().slice(0, 40),
            ring: style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0 || style.boxShadow !== "none"};
}"""


def test_the_keyboard_reaches_the_navigation_and_focus_is_visible(page: Page, ui_server: UiServer) -> None:
    ui.open_route(page, ui_server, "/", "Overview")  # a first load: the focus starts at the top of the document
    seen = []
    for _ in range(4):  # the navigation comes first
        page.keyboard.press("Tab")
        focused = page.evaluate(_FOCUS_RING)
        assert focused is not None, "Tab left the focus nowhere"
        seen.append(focused)
    assert all(f["ring"] for f in seen), f"focused without a visible ring: {[f for f in seen if not f['ring']]}"
    assert {"Dead letters", "Recurring", "Workers"} <= {f["text"] for f in seen}, seen

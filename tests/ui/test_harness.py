"""The harness itself, independent of the dashboard: Debian's Chromium reaches a real server on each store."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.ui.api import Api
from tests.ui.servers import UiServer


def test_the_browser_reads_the_servers_health_and_openapi(page: Page, ui_server: UiServer, api: Api) -> None:
    health = page.goto(f"{ui_server.url}/health")
    assert health is not None
    assert health.status == 200
    expect(page.locator("body")).to_contain_text(f'"store":"{ui_server.store}"')

    # A script of the page calls the API, as the dashboard will (same origin, no credentials: auth is off).
    title = page.evaluate("async () => (await (await fetch('/openapi.json')).json()).info.title")
    assert title == "Tasques API"
    # The server counts what it answers: the measure of "no polling when no page is open" (test_live.py).
    assert api.http_requests_served() >= 3

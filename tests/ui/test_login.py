"""With auth on, on each store: the page asks for a token, shows the API's refusal of a wrong one, works with
a right one, and forgets it on log-out. The static page itself needs no credentials; the API always does."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, Playwright, expect

from tests.ui import pages as ui
from tests.ui.api import Api
from tests.ui.servers import UiServer

WRONG_TOKEN = "tq_AAAAAAAAAAAAAAAA_" + "A" * 43  # well-formed, unknown


@pytest.fixture
def admin(pw: Playwright, auth_server: UiServer) -> Iterator[Api]:
    request = pw.request.new_context()
    yield Api(request, auth_server.url, auth_server.admin_token)
    request.dispose()


def test_logging_in_with_a_token(page: Page, auth_server: UiServer, admin: Api, queue: str) -> None:
    viewer = admin.call("POST", "/projects/default/tokens", {"role": "viewer"}, status=201)["token"]
    admin.create_task(queue, "send-invoice", id="inv-1")
    refused = Api(admin.request, auth_server.url, WRONG_TOKEN).call("GET", "/overview", status=401)

    page.goto(auth_server.ui("/"))
    form = page.get_by_role("form", name="Log in")
    expect(form).to_be_visible()
    expect(page.get_by_role("table", name="Queues")).to_have_count(0)  # no data without a token
    assert ui.unlabelled_inputs(page) == []

    form.get_by_label("API token").fill(WRONG_TOKEN)
    ui.button(form, "Log in").click()
    expect(ui.error_area(page)).to_contain_text(refused["message"])
    expect(form).to_be_visible()

    form.get_by_label("API token").fill(viewer)
    ui.button(form, "Log in").click()
    expect(ui.heading(page)).to_have_text("Overview")
    expect(ui.count_cell(ui.queue_row(page, queue), "queued")).to_have_text("1")
    assert page.evaluate("token => Object.values(sessionStorage).includes(token)", viewer) is True

    ui.button(page.get_by_role("navigation", name="Main"), "Log out").click()
    expect(page.get_by_role("form", name="Log in")).to_be_visible()
    assert page.evaluate("token => Object.values(sessionStorage).includes(token)", viewer) is False

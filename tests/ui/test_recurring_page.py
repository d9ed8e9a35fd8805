"""Recurring tasks in a real browser, on each store: the API's validation message next to the field, the next
five fire times while typing, save, edit, and delete with confirmation."""

from __future__ import annotations

import json

from playwright.sync_api import Page, expect

from tests.ui import pages as ui
from tests.ui.api import Api
from tests.ui.servers import UiServer
from tests.waiting import eventually

BAD_SCHEDULE = "every tuesday"


def test_a_recurring_task_is_validated_previewed_saved_edited_and_deleted(
    page: Page, ui_server: UiServer, api: Api, queue: str
) -> None:
    rid = f"report-{queue}"
    # What the API says about the bad schedule: the page must show this very message by the field.
    definition = {"queue": queue, "kind": "daily-report"}
    refused = api.call("POST", "/recurring_tasques", {"id": rid, "schedule_expression": BAD_SCHEDULE,
                                                        "task_definition": definition}, status=400)  # fmt: skip
    [detail] = refused["details"]
    assert detail["field"] == "schedule_expression", refused

    ui.open_route(page, ui_server, "/recurring", "Recurring tasks")
    form = page.get_by_role("form", name="Recurring task")
    form.get_by_label("Id", exact=True).fill(rid)
    form.get_by_label("Schedule", exact=True).fill(BAD_SCHEDULE)
    form.get_by_label("Queue", exact=True).fill(queue)
    form.get_by_label("Kind", exact=True).fill("daily-report")
    form.get_by_label("Args (JSON)").fill(json.dumps({"format": "pdf"}))
    form.get_by_label("Skip if outstanding").check()
    ui.button(form, "Save").click()
    expect(page.locator('[data-error-for="schedule_expression"]')).to_contain_text(detail["problem"])
    expect(ui.error_area(page)).to_contain_text("schedule_expression")
    assert api.response("GET", f"/recurring_tasques/{rid}").status == 404

    form.get_by_label("Schedule", exact=True).fill("*/15 * * * *")
    expect(page.get_by_role("list", name="Next fire times").get_by_role("listitem")).to_have_count(5)
    ui.button(form, "Save").click()
    row = ui.recurring_row(page, rid)
    expect(row).to_be_visible()
    saved = api.call("GET", f"/recurring_tasques/{rid}")  # the row is drawn from the API's list
    assert saved["schedule_expression"] == "*/15 * * * *"
    assert saved["task_definition"]["queue"] == queue
    assert saved["task_definition"]["args"] == {"format": "pdf"}
    assert saved["skip_if_outstanding_tasks_exist"] is True

    ui.button(row, "Edit").click()
    expect(form.get_by_label("Id", exact=True)).to_have_value(rid)
    form.get_by_label("Schedule", exact=True).fill("@every 1h")
    expect(page.get_by_role("list", name="Next fire times").get_by_role("listitem")).to_have_count(5)
    ui.button(form, "Save").click()
    eventually(
        "the edited schedule saved",
        lambda: api.call("GET", f"/recurring_tasques/{rid}")["schedule_expression"],
        lambda got: got == "@every 1h",
    )

    ui.button(row, "Delete").click()
    dialog = page.get_by_role("dialog")
    ui.button(dialog, "Cancel").click()
    expect(row).to_be_visible()
    ui.button(row, "Delete").click()
    ui.button(dialog, "Delete").click()
    expect(row).to_have_count(0)
    eventually("the deletion", lambda: api.response("GET", f"/recurring_tasques/{rid}").status, lambda s: s == 404)

"""The dashboard in a real browser, on each store: what the API does shows on the page without a reload, and
what the page does (pause, replay, drain, delete) the API then sees. DOM names: tests/ui/pages.py (contract 2)."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.ui import pages as ui
from tests.ui.api import Api
from tests.ui.servers import UiServer
from tests.ui.target import Target
from tests.waiting import eventually

SOMETHING = re.compile(r"\S")


def test_tasks_created_through_the_api_appear_without_a_reload(
    page: Page, ui_server: UiServer, api: Api, queue: str
) -> None:
    ui.open_route(page, ui_server, "/", "Overview")
    expect(page.locator("p#store")).to_contain_text(ui_server.store)
    expect(page.locator("p#leader")).to_have_text(SOMETHING)
    ui.mark_document(page)
    for n in range(3):
        api.create_task(queue, "send-email", id=f"mail-{n}", args={"to": f"user{n}@example.com"})

    row = ui.queue_row(page, queue)
    expect(ui.count_cell(row, "queued")).to_have_text("3")
    for state in ui.STATES:
        expect(ui.count_cell(row, state)).to_have_count(1)
    expect(ui.field_cell(row, "paused")).to_have_text("")
    expect(ui.field_cell(row, "throughput")).to_have_count(1)
    expect(ui.field_cell(row, "oldest")).to_have_text(SOMETHING)

    row.get_by_role("link", name=queue, exact=True).click()
    expect(ui.heading(page)).to_have_text(f"Queue {queue}")
    expect(ui.task_rows(page)).to_have_count(3)
    api.create_task(queue, "send-email", id="mail-3")
    expect(ui.task_rows(page)).to_have_count(4)
    expect(ui.task_row(page, "mail-3").locator('td[data-field="state"]')).to_have_text("queued")
    ui.assert_not_reloaded(page)


def test_pausing_a_queue_from_the_page_stops_claims_until_resumed(
    page: Page, ui_server: UiServer, api: Api, queue: str
) -> None:
    api.create_task(queue, "resize", id="img-1")
    ui.open_route(page, ui_server, f"/queues/{queue}", f"Queue {queue}")
    # Listed means searchable: on Elasticsearch a claim now sees the task too, so an empty claim means paused.
    expect(ui.task_row(page, "img-1")).to_be_visible()

    with page.expect_response(
        lambda r: r.request.method == "PUT" and r.url.endswith(f"/queues/{queue}/pause")
    ) as paused:
        ui.button(page, "Pause").click()
    assert paused.value.ok, paused.value.status
    assert api.claim(queue, "w-paused")[0] == []

    ui.nav_link(page, "Overview").click()
    expect(ui.heading(page)).to_have_text("Overview")
    row = ui.queue_row(page, queue)
    expect(ui.field_cell(row, "paused")).to_have_text("paused")

    row.get_by_role("link", name=queue, exact=True).click()
    expect(ui.heading(page)).to_have_text(f"Queue {queue}")
    with page.expect_response(
        lambda r: r.request.method == "PUT" and r.url.endswith(f"/queues/{queue}/resume")
    ) as resumed:
        ui.button(page, "Resume").click()
    assert resumed.value.ok, resumed.value.status
    assert api.claim_until_one(queue, "w-paused")["id"] == "img-1"


def test_an_http_target_tasks_page_shows_its_attempt_timeline(
    page: Page, ui_server: UiServer, api: Api, queue: str, target: Target
) -> None:
    hook = f"/flaky/{queue}"  # 503 first, 200 after: two attempts
    api.create_task(
        queue,
        "webhook",
        id="hook-1",
        http_request={"url": f"{target.url}{hook}", "method": "POST", "body": {"event": "signup"}},
        retry_times=1,
        retry_policy={"mode": "linear", "retry_interval": "100ms"},
    )
    ui.open_route(page, ui_server, f"/tasks/{queue}/hook-1", f"Task {queue}/hook-1")
    expect(ui.task_field(page, "state")).to_have_text("done")  # the page follows the retries by itself
    expect(ui.attempts(page)).to_have_count(2)
    expect(ui.attempts(page).filter(has_text="503")).to_have_count(1)
    expect(ui.attempts(page).filter(has_text="200")).to_have_count(1)
    assert target.seen[hook] == 2
    for section in ("Claim", "Reports", "Result", "Failure", "Dependencies"):
        expect(ui.section(page, section)).to_have_count(1)
    # A finished task can be neither cancelled, run now nor replayed.
    for name in ("Cancel", "Run now", "Replay"):
        expect(ui.button(page, name)).to_have_count(0)


def test_a_dead_task_is_replayed_from_dead_letters(page: Page, ui_server: UiServer, api: Api, queue: str) -> None:
    api.dead_task(queue, "img-9")
    ui.open_route(page, ui_server, f"/tasks/{queue}/img-9", f"Task {queue}/img-9")
    expect(ui.task_field(page, "state")).to_have_text("dead")
    expect(ui.button(page, "Replay")).to_be_visible()
    expect(ui.button(page, "Run now")).to_have_count(0)
    expect(ui.section(page, "Failure")).to_contain_text("the image could not be decoded")

    ui.nav_link(page, "Dead letters").click()
    expect(ui.heading(page)).to_have_text("Dead letters")
    page.get_by_label("Queue", exact=True).fill(queue)
    ui.button(page, "Apply").click()
    row = ui.dead_row(page, queue, "img-9")
    expect(row).to_be_visible()
    expect(page.get_by_role("table", name="Dead tasks").locator("tr[data-task-id]")).to_have_count(1)
    page.get_by_label(f"Select {queue}/img-9").check()
    ui.button(page, "Replay selected").click()
    expect(page.get_by_role("status")).to_contain_text(re.compile(r"\b1\b"))  # one replayed

    eventually("the replayed task queued", lambda: api.task(queue, "img-9")["state"], lambda s: s == "queued")
    expect(row).to_have_count(0)


def test_draining_a_worker_from_the_page_stops_its_claims(
    page: Page, ui_server: UiServer, api: Api, queue: str
) -> None:
    worker = f"worker-{queue}"
    api.create_task(queue, "resize", id="a")
    assert api.claim_until_one(queue, worker)["id"] == "a"  # the registry sees the worker through its claims

    ui.open_route(page, ui_server, "/workers", "Workers")
    row = ui.worker_row(page, worker)
    state = row.locator('td[data-field="state"]')
    expect(state).to_have_text("active")
    expect(row).to_contain_text(queue)
    ui.button(row, "Drain").click()
    expect(state).to_have_text("draining")

    def drained_claim() -> tuple[list[object], dict[str, str]]:
        return api.claim(queue, worker)

    tasks, headers = eventually(
        "a draining claim", drained_claim, lambda r: r[1].get("x-tasques-worker-draining") == "true"
    )
    assert tasks == []
    api.create_task(queue, "resize", id="b")
    tasks, headers = api.claim(queue, worker)
    assert tasks == []
    assert headers.get("x-tasques-worker-draining") == "true"

    ui.button(row, "Resume").click()
    expect(state).to_have_text("active")
    assert api.claim_until_one(queue, worker)["id"] == "b"


def test_deleting_a_queue_needs_its_name_typed(page: Page, ui_server: UiServer, api: Api, queue: str) -> None:
    api.create_task(queue, "k", id="x")
    ui.open_route(page, ui_server, f"/queues/{queue}", f"Queue {queue}")
    expect(ui.task_row(page, "x")).to_be_visible()

    ui.button(page, "Delete queue").click()
    dialog = page.get_by_role("dialog")
    ui.button(dialog, "Cancel").click()
    expect(dialog).to_have_count(0)
    api.task(queue, "x")  # still there

    ui.button(page, "Delete queue").click()
    delete = ui.button(dialog, "Delete")
    expect(delete).to_be_disabled()
    dialog.get_by_label("Queue name").fill(f"{queue}-typo")
    expect(delete).to_be_disabled()
    dialog.get_by_label("Queue name").fill(queue)
    expect(delete).to_be_enabled()
    delete.click()
    eventually("the task deleted", lambda: api.response("GET", f"/tasques/{queue}/x").status, lambda s: s == 404)

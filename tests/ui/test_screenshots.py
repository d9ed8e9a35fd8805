"""One full-page screenshot per dashboard page, on SQLite with a small but realistic day of work, for the README.

Always written to the artifacts dir; written to docs/screenshots/<page>.png only with
TASQUES_UPDATE_SCREENSHOTS=1 (`make screenshots`), so `make test` never changes the tree."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, Playwright, expect

from tests.ui import pages as ui
from tests.ui.api import Api
from tests.ui.servers import UiServer, auth_settings, running_server
from tests.ui.target import Target
from tests.waiting import eventually

DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
UPDATE = os.environ.get("TASQUES_UPDATE_SCREENSHOTS") == "1"


@pytest.fixture(scope="module")
def docs_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiServer]:
    with running_server(request, "sqlite", tmp_path_factory.mktemp("ui-docs")) as server:
        yield server


@pytest.fixture(scope="module")
def docs_auth_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiServer]:
    """For the login page's picture: SQLite with auth on (the shared `auth_server` runs on each store)."""
    with running_server(request, "sqlite", tmp_path_factory.mktemp("ui-docs-auth"), auth_settings()) as server:
        yield server


@pytest.fixture
def docs_api(pw: Playwright, docs_server: UiServer) -> Iterator[Api]:
    request = pw.request.new_context()
    yield Api(request, docs_server.url)
    request.dispose()


def seed(api: Api, target: Target) -> None:
    """A few queues in every state, a worker, dead letters, an HTTP task with a retry, recurring tasks."""
    for n in range(1, 7):
        api.create_task("emails", "send-welcome", id=f"welcome-{n}", args={"user_id": 4100 + n})
    worker = {"X-TASQUES-WORKER-ID": "mailer-1"}
    for n in range(1, 4):
        assert api.claim_until_one("emails", "mailer-1")["id"] == f"welcome-{n}"
    for n in range(1, 3):
        api.call("PUT", f"/tasques/done/emails/welcome-{n}", {"data": {"delivered": True}}, headers=worker)
    api.dead_task("images", "photo-3", worker="resizer-1")
    api.dead_task("images", "photo-8", worker="resizer-1")
    api.create_task("images", "resize", id="photo-17", args={"width": 640})
    api.create_task("exports", "csv-export", id="export-2026-12", args={"month": "2026-12"})
    api.call("PUT", "/queues/exports/pause")
    api.create_task(
        "webhooks",
        "notify-crm",
        id="signup-981",
        http_request={"url": f"{target.url}/flaky/crm", "method": "POST", "body": {"event": "signup"}},
        retry_times=2,
        retry_policy={"mode": "linear", "retry_interval": "100ms"},
    )
    eventually("the webhook delivered", lambda: api.task("webhooks", "signup-981")["state"], lambda s: s == "done")
    for rid, schedule, queue in (("nightly-report", "0 2 * * *", "reports"), ("hourly-sync", "@every 1h", "sync")):
        body = {"id": rid, "schedule_expression": schedule, "task_definition": {"queue": queue, "kind": rid}}
        api.call("POST", "/recurring_tasques", body, status=201)


def capture(page: Page, artifacts: Path, name: str) -> None:
    page.screenshot(path=str(artifacts / f"docs-{name}.png"), full_page=True)
    if UPDATE:
        DOCS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOCS / f"{name}.png"), full_page=True)


def test_one_screenshot_per_page(
    page: Page, docs_server: UiServer, docs_api: Api, docs_auth_server: UiServer, target: Target, artifacts: Path
) -> None:
    seed(docs_api, target)
    shots = [
        ("overview", "/", "Overview", ui.queue_row(page, "webhooks")),
        ("queue", "/queues/emails", "Queue emails", ui.task_row(page, "welcome-6")),
        ("task", "/tasks/webhooks/signup-981", "Task webhooks/signup-981", ui.attempts(page).nth(1)),
        ("recurring", "/recurring", "Recurring tasks", ui.recurring_row(page, "nightly-report")),
        ("workers", "/workers", "Workers", ui.worker_row(page, "mailer-1")),
        ("dead-letters", "/dead", "Dead letters", ui.dead_row(page, "images", "photo-8")),
    ]
    for name, route, title, shown in shots:
        ui.open_route(page, docs_server, route, title)
        expect(shown).to_be_visible()
        capture(page, artifacts, name)

    page.goto(docs_auth_server.ui("/"))
    expect(page.get_by_role("form", name="Log in")).to_be_visible()
    capture(page, artifacts, "login")

"""The browser harness: real `tasques serve` processes (one per store kind and test module), Debian's Chromium
driven by Playwright, and a page per test that leaves a full-page screenshot behind (see tests/ui/README.md).

Playwright's sync API keeps its event loop marked as running in this thread while it lives, so `asyncio.run`
cannot be called here then: the async clean-up (Elasticsearch prefixes) runs in a thread of its own, and
Playwright lives per test module rather than per session, so the async tests of other files that the same
test process runs later get a thread without a running loop.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Playwright, ViewportSize, expect, sync_playwright

from tests.ui.api import Api
from tests.ui.chromium import launch_options
from tests.ui.servers import UiServer, auth_settings, running_server
from tests.ui.target import Target

ARTIFACTS_ENV = "TASQUES_TEST_ARTIFACTS"
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}
# Elasticsearch shows a write after a refresh, and a page refreshes every 2 s: room for both, and CI's load.
expect.set_options(timeout=10_000)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("elasticsearch", marks=pytest.mark.elasticsearch)])
def ui_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiServer]:
    """A real `tasques serve` without auth, shared by the tests of one module on one store kind (each test uses
    queue names of its own: the `queue` fixture)."""
    kind: str = request.param
    with running_server(request, kind, tmp_path_factory.mktemp(f"ui-{kind}")) as server:
        yield server


@pytest.fixture(scope="module", params=["sqlite", pytest.param("elasticsearch", marks=pytest.mark.elasticsearch)])
def auth_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiServer]:
    """A real `tasques serve` with auth on and a bootstrap admin token (`admin_token`), once per store kind (the
    project and token records live in the store)."""
    kind: str = request.param
    with running_server(request, kind, tmp_path_factory.mktemp(f"ui-auth-{kind}"), auth_settings()) as server:
        yield server


@pytest.fixture(scope="module")
def pw() -> Iterator[Playwright]:
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="module")
def browser(pw: Playwright) -> Iterator[Browser]:
    """Debian's Chromium, headless (never a browser Playwright downloads)."""
    browser = pw.chromium.launch(**launch_options())
    yield browser
    browser.close()


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the screenshots go: $TASQUES_TEST_ARTIFACTS, else a temp dir (the run's summary prints it)."""
    configured = os.environ.get(ARTIFACTS_ENV)
    path = Path(configured) if configured else tmp_path_factory.getbasetemp() / "ui-artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return path


def pytest_terminal_summary(terminalreporter: Any) -> None:
    configured = os.environ.get(ARTIFACTS_ENV)
    if configured:
        found = [Path(configured)] if Path(configured).is_dir() else []
    else:  # with pytest-xdist, each test process has its own base temp dir under the run's
        base = terminalreporter.config._tmp_path_factory.getbasetemp()
        found = sorted([*base.glob("ui-artifacts"), *base.glob("*/ui-artifacts")])
    for path in found:
        terminalreporter.write_line(f"UI test screenshots: {path}")


def artifact_name(request: pytest.FixtureRequest) -> str:
    """`test_dashboard--test_pause[sqlite]` as a file name: the module and the test, per store."""
    raw = f"{request.node.module.__name__.rsplit('.', 1)[-1]}--{request.node.name}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", raw).strip("-")


@contextmanager
def page_in(browser: Browser, viewport: ViewportSize, shot: Path) -> Iterator[Page]:
    """A page in a fresh context (no shared storage); on the way out a full-page screenshot at `shot`, and the
    page's console errors, when there were any, beside it."""
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    try:
        yield page
    finally:
        try:
            if not page.is_closed():
                page.screenshot(path=str(shot), full_page=True)
            if errors:
                shot.with_suffix(".console.txt").write_text("\n".join(errors) + "\n")
        finally:
            context.close()


@pytest.fixture
def shot(artifacts: Path, request: pytest.FixtureRequest) -> Path:
    """This test's screenshot: `<artifacts>/<module>--<test>.png` (a test that closes its page takes it itself)."""
    return artifacts / f"{artifact_name(request)}.png"


@pytest.fixture
def page(browser: Browser, shot: Path) -> Iterator[Page]:
    """A desktop page (1280x800) of its own context, screenshot at `shot` when the test ends."""
    with page_in(browser, DESKTOP, shot) as p:
        yield p


@pytest.fixture
def phone_page(browser: Browser, shot: Path) -> Iterator[Page]:
    """A phone-width page (390x844), screenshot beside `shot` (`...-phone.png`)."""
    with page_in(browser, PHONE, shot.with_name(f"{shot.stem}-phone.png")) as p:
        yield p


@pytest.fixture
def api(pw: Playwright, ui_server: UiServer) -> Iterator[Api]:
    request = pw.request.new_context()
    yield Api(request, ui_server.url)
    request.dispose()


@pytest.fixture
def queue(request: pytest.FixtureRequest) -> str:
    """A queue name no other test of the shared server uses, readable in screenshots."""
    stem = re.sub(r"[^a-z0-9]+", "-", request.node.originalname.removeprefix("test_").lower()).strip("-")
    return f"{stem[:40]}-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    served = Target().start()
    yield served
    served.stop()

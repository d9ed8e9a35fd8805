"""The dashboard's reads over HTTP: `GET /overview` on both stores (counts, paused, throughput per minute, oldest
due task, leader and server), `GET /schedules/preview` (fire times, strict `expression` and `count`), and the
static files at `/ui` (headers, open with auth on while the API is not, no path traversal)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import tasques.server
from tasques.api.routes_ui import STATIC_DIR, UI_HEADERS, asset_path
from tasques.leader.election import LOCK_NAME
from tasques.service.clock import ManualClock
from tests.api.auth_helpers import ADMIN_HEADERS, auth_client
from tests.api.conftest import WORKER, Client, MakeClient, Serve, assert_error, call, claim_one, create_task

HOLDER = "overview-test"


async def _overview(client: Client) -> Any:
    return await call(client, "GET", "/overview", status=200)


def _counts(**nonzero: int) -> dict[str, int]:
    states = ("queued", "claimed", "failed", "done", "dead", "cancelled", "waiting")
    return {s: nonzero.get(s, 0) for s in states}


async def test_the_overview_counts_queues_and_their_throughput_per_minute(serve: Serve, clock: ManualClock) -> None:
    client, store = await serve(holder=HOLDER)
    for _ in range(3):
        await create_task(client, "q")  # all due at T0 (03:04:05)
    first = await claim_one(client, "q")
    await call(client, "PUT", f"/tasques/done/q/{first['id']}", status=200, worker=WORKER)  # finished in 03:04
    clock.advance(timedelta(seconds=60))
    second = await claim_one(client, "q")
    await call(client, "PUT", f"/tasques/done/q/{second['id']}", status=200, worker=WORKER)  # in 03:05
    clock.advance(timedelta(seconds=30))  # now 03:05:35; c has been due for 90 s
    await create_task(client, "r", id="d", retry_times=0)
    await claim_one(client, "r")
    await call(client, "PUT", "/tasques/failed/r/d", status=200, worker=WORKER, body={"data": {"boom": 1}})
    await call(client, "PUT", "/queues/paused-q/pause", status=200)  # settings only, no task

    body = await _overview(client)
    assert body["store"] == store.kind
    assert body["server"] == {"id": HOLDER, "leader": False}
    assert body["leader"] == {"holder": "someone-else", "expires_at": "2200-01-01T00:00:00Z"}
    assert body["minutes"] == [f"2024-01-02T03:0{m}:00Z" for m in range(1, 6)]
    assert body["queues"] == [
        {"queue": "paused-q", "counts": _counts(), "paused": True, "oldest_queued_age_seconds": 0.0,
         "finished_per_minute": [0, 0, 0, 0, 0]},
        {"queue": "q", "counts": _counts(queued=1, done=2), "paused": False, "oldest_queued_age_seconds": 90.0,
         "finished_per_minute": [0, 0, 0, 1, 1]},
        {"queue": "r", "counts": _counts(dead=1), "paused": False, "oldest_queued_age_seconds": 0.0,
         "finished_per_minute": [0, 0, 0, 0, 1]},
    ]  # fmt: skip

    # Four minutes on, 03:04 has left the window and 03:05 is the oldest minute shown.
    clock.advance(timedelta(minutes=4))
    later = await _overview(client)
    assert later["minutes"][0] == "2024-01-02T03:05:00Z"
    assert later["minutes"][-1] == "2024-01-02T03:09:00Z"
    assert [q["finished_per_minute"] for q in later["queues"]] == [[0] * 5, [1, 0, 0, 0, 0], [1, 0, 0, 0, 0]]
    await call(client, "PUT", "/queues/paused-q/resume", status=200)
    assert (await _overview(client))["queues"][0]["paused"] is False


async def test_the_overview_names_no_leader_without_a_live_lease_and_this_server_when_it_leads(
    serve: Serve, clock: ManualClock
) -> None:
    client, store = await serve(holder=HOLDER)
    await client.app[tasques.server.ELECTOR].stop(1.0)  # it never takes the lock from now on
    await store.release_lock(LOCK_NAME, "someone-else")
    body = await _overview(client)
    assert body["leader"] is None
    assert body["server"] == {"id": HOLDER, "leader": False}
    assert body["queues"] == []

    leading, _ = await serve(leader=True, holder=HOLDER)
    await asyncio.wait_for(leading.app[tasques.server.ELECTOR].elected.wait(), timeout=10)
    body = await _overview(leading)
    assert body["server"] == {"id": HOLDER, "leader": True}
    assert body["leader"]["holder"] == HOLDER
    assert datetime.fromisoformat(body["leader"]["expires_at"]) == clock() + timedelta(hours=2)


async def test_the_schedule_preview_lists_the_next_fire_times(client: Client) -> None:
    # The clock is T0, 2024-01-02T03:04:05Z.
    body = await call(client, "GET", "/schedules/preview", status=200, params={"expression": "@every 1m", "count": "3"})
    assert body == {
        "expression": "@every 1m",
        "next": ["2024-01-02T03:05:00Z", "2024-01-02T03:06:00Z", "2024-01-02T03:07:00Z"],
    }
    body = await call(client, "GET", "/schedules/preview", status=200, params={"expression": "30 4 * * *"})
    assert body["next"] == [f"2024-01-0{d}T04:30:00Z" for d in range(2, 7)]  # count defaults to 5
    body = await call(
        client, "GET", "/schedules/preview", status=200, params={"expression": "CRON_TZ=Europe/Paris 0 9 * * *"}
    )
    assert body["next"][0] == "2024-01-02T08:00:00Z"
    assert len((await call(client, "GET", "/schedules/preview", status=200,
                           params={"expression": "@hourly", "count": "50"}))["next"]) == 50  # fmt: skip
    assert len((await call(client, "GET", "/schedules/preview", status=200,
                           params={"expression": "@hourly", "count": "1"}))["next"]) == 1  # fmt: skip


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "expression"),
        ({"expression": ""}, "expression"),
        ({"expression": "nonsense"}, "expression"),
        ({"expression": "61 * * * *"}, "expression"),
        ({"expression": "@every 1m " + "x" * 200}, "expression"),
        ({"expression": "@hourly", "count": "0"}, "count"),
        ({"expression": "@hourly", "count": "51"}, "count"),
        ({"expression": "@hourly", "count": "five"}, "count"),
        ({"expression": "@hourly", "count": "+5"}, "count"),
        ({"expression": "@hourly", "count": "5.0"}, "count"),
        ({"expression": "@hourly", "count": "\u0665"}, "count"),  # an Arabic-Indic five: str.isdigit() is true
        ({"expression": "@hourly", "count": ""}, "count"),
    ],
)
async def test_a_bad_preview_is_a_400_naming_the_parameter(client: Client, params: dict[str, str], field: str) -> None:
    assert_error(await call(client, "GET", "/schedules/preview", status=400, params=params), field)


async def _get(client: Client, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    async with client.get(path, headers=headers or {}) as resp:
        return resp.status, dict(resp.headers), await resp.read()


async def test_ui_files_are_served_open_with_their_headers_while_the_api_needs_credentials(
    make_client: MakeClient,
) -> None:
    client = await auth_client(make_client)
    index = (STATIC_DIR / "index.html").read_bytes()
    for path in ("/ui", "/ui/", "/ui/index.html"):
        status, headers, body = await _get(client, path)
        assert status == 200, path
        assert body == index
        assert headers["Content-Type"].startswith("text/html")
        for name, value in UI_HEADERS.items():
            assert headers[name] == value, (path, name)
    assert (await _get(client, "/overview"))[0] == 401
    assert (await _get(client, "/schedules/preview?expression=@hourly"))[0] == 401
    assert (await _get(client, "/overview", ADMIN_HEADERS))[0] == 200
    # Only /ui and what is under /ui/ are open.
    for path in ("/uix", "/ui-admin", "/uiindex.html"):
        assert (await _get(client, path))[0] == 401, path
    status, _, body = await _get(client, "/ui/no-such-asset.js")
    assert status == 404
    assert b"no dashboard asset" in body


async def _raw_get(client: Client, raw_path: str) -> tuple[int, bytes]:
    """Send the path byte for byte (an HTTP client would normalise `..` and percent-encodings away)."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        writer.write(f"GET {raw_path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode("latin-1"))
        await writer.drain()
        response = await reader.read()
    finally:
        writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


@pytest.mark.parametrize(
    "raw_path",
    [
        "/ui/../../api/app.py",
        "/ui/%2e%2e/%2e%2e/api/app.py",
        "/ui/.%2e/.%2e/api/app.py",
        "/ui/..%2f..%2fapi%2fapp.py",
        "/ui/%2e%2e%2f%2e%2e%2fapi%2fapp.py",
        "/ui/..%5c..%5capi%5capp.py",
        "/ui/..\\..\\api\\app.py",
        "/ui//etc/passwd",
        "/ui/%2fetc%2fpasswd",
        "/ui/./index.html/../../../api/app.py",
        "/ui/%00index.html",
        "/ui/.hidden",
        "/ui/../overview",
        "/ui/%2e%2e/overview",
        "/ui%2f..%2foverview",
        "/%75i/../overview",
        "/ui/..%2f..%2foverview",
    ],
)
async def test_ui_paths_never_leave_the_static_directory(make_client: MakeClient, raw_path: str) -> None:
    client = await auth_client(make_client)
    status, body = await _raw_get(client, raw_path)
    assert status in (400, 401, 404), (raw_path, status)
    assert b"build_app" not in body
    assert b"root:" not in body
    assert b'"queues"' not in body  # never the overview's answer


def test_asset_names_resolve_inside_the_root_only(tmp_path: Path) -> None:
    root = tmp_path / "static"
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html>")
    (root / "assets" / "app.js").write_text("//")
    (tmp_path / "secret.txt").write_text("secret")
    (root / "link.txt").symlink_to(tmp_path / "secret.txt")
    assert asset_path("index.html", root) == (root / "index.html").resolve()
    assert asset_path("assets/app.js", root) == (root / "assets" / "app.js").resolve()
    for name in ("", "assets", "assets/", "../secret.txt", "assets/../../secret.txt", "/etc/passwd", "link.txt",
                 "./index.html", "..\\secret.txt", ".hidden", "nul\x00l"):  # fmt: skip
        assert asset_path(name, root) is None, name

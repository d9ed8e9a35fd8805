"""An Elastic APM server stand-in on 127.0.0.1 (a real APM server cannot run here).

It answers the three endpoints the Python agent calls, as the APM server documents them:
- `GET /`: server information (the agent reads `version`; it drops unsampled transactions for servers >= 8.0);
- `POST /config/v1/agents`: central configuration (`{}` and an `Etag`; 304 when `If-None-Match` matches);
- `POST /intake/v2/events`: the intake: an NDJSON stream (gzip or zlib deflated, or plain: aiohttp inflates it) whose first line is
  the `metadata` object and each next line one `transaction`, `span`, `error`, `metricset` or `log` object;
  202 when accepted, 400 with the reason when a line is malformed, 401 without the expected Authorization.
Every decoded event is kept for the test to check, with the Authorization header it came with.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

EVENT_KINDS = frozenset({"transaction", "span", "error", "metricset", "log"})
# The fields the intake's JSON schema requires for each kind (APM server docs, "Events intake API").
REQUIRED = {
    "metadata": ("service",),
    "transaction": ("id", "trace_id", "type", "duration", "span_count"),
    "span": ("id", "trace_id", "parent_id", "name", "type", "duration"),
    "error": ("id",),
    "metricset": ("samples",),
    "log": (),
}
CONFIG_ETAG = '"tasques-test-config-1"'


@dataclass
class Event:
    kind: str
    body: dict[str, Any]
    metadata: dict[str, Any]
    authorization: str | None
    encoding: str | None  # the batch's Content-Encoding
    batch: int  # which intake request carried it


@dataclass
class Intake:
    version: str = "8.15.0"
    authorization: str | None = None  # the header value every request must carry, when set
    url: str = ""
    events: list[Event] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)  # why a request was refused (401/400)
    server_info_calls: int = 0
    config_calls: list[dict[str, Any]] = field(default_factory=list)
    batches: int = 0
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e.body for e in self.events if e.kind == kind]

    async def wait_for(self, check: Callable[[], Any], within: float = 30.0) -> Any:
        """Until `check()` is truthy (as the agent's batches arrive); fails after `within` seconds."""
        async with asyncio.timeout(within):
            while not (result := check()):
                self._changed.clear()
                await self._changed.wait()
        return result

    def _authorized(self, request: web.Request) -> bool:
        if self.authorization is None or request.headers.get("Authorization") == self.authorization:
            return True
        self.rejected.append(f"{request.method} {request.path}: Authorization {request.headers.get('Authorization')!r}")
        self._changed.set()
        return False

    async def server_info(self, request: web.Request) -> web.Response:
        self.server_info_calls += 1
        self._changed.set()
        if not self._authorized(request):
            return web.json_response({})  # the real server answers anonymous callers without build details
        body = {"build_date": "2024-01-01T00:00:00Z", "build_sha": "0" * 40, "publish_ready": True}
        return web.json_response({**body, "version": self.version})

    async def agent_config(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"error": "unauthorized"}, status=401)
        self.config_calls.append(await request.json())
        self._changed.set()
        headers = {"Etag": CONFIG_ETAG, "Cache-Control": "max-age=30, must-revalidate"}
        if request.headers.get("If-None-Match") == CONFIG_ETAG:
            return web.Response(status=304, headers=headers)
        return web.json_response({}, headers=headers)

    async def intake(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"accepted": 0, "errors": [{"message": "authentication failed"}]}, status=401)
        raw = await request.read()
        try:
            lines = _decode(raw, request.headers.get("Content-Encoding"), request.content_type)
            parsed = _parse(lines)
        except ValueError as e:
            self.rejected.append(f"intake: {e}")
            self._changed.set()
            return web.json_response({"accepted": 0, "errors": [{"message": str(e)}]}, status=400)
        self.batches += 1
        metadata, events = parsed
        auth, encoding = request.headers.get("Authorization"), request.headers.get("Content-Encoding")
        self.events.extend(Event(kind, body, metadata, auth, encoding, self.batches) for kind, body in events)
        self._changed.set()
        return web.Response(status=202)


def _decode(raw: bytes, encoding: str | None, content_type: str) -> list[bytes]:
    # aiohttp's request parser has already inflated a gzip or deflate body (and answered 400 to one that does
    # not inflate); here only the encodings the intake accepts get through.
    if content_type != "application/x-ndjson":
        raise ValueError(f"content type {content_type!r}, not application/x-ndjson")
    if encoding not in (None, "identity", "gzip", "deflate"):
        raise ValueError(f"unsupported Content-Encoding {encoding!r}")
    return [line for line in raw.split(b"\n") if line.strip()]


def _parse(lines: list[bytes]) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
    objects = []
    for n, line in enumerate(lines, 1):
        obj = json.loads(line)
        if not isinstance(obj, dict) or len(obj) != 1:
            raise ValueError(f"line {n}: not an object with one key")
        ((kind, body),) = obj.items()
        if not isinstance(body, dict):
            raise ValueError(f"line {n}: {kind} is not an object")
        missing = [f for f in REQUIRED.get(kind, ()) if f not in body]
        if missing:
            raise ValueError(f"line {n}: {kind} lacks {missing}")
        objects.append((kind, body))
    if not objects or objects[0][0] != "metadata":
        raise ValueError("the first line must be the metadata")
    unknown = {kind for kind, _ in objects[1:]} - EVENT_KINDS
    if unknown:
        raise ValueError(f"unknown event kinds {sorted(unknown)}")
    return objects[0][1], objects[1:]


@asynccontextmanager
async def running_intake(**settings: Any) -> AsyncIterator[Intake]:
    intake = Intake(**settings)
    # A real APM server reads the stream event by event with no limit on the whole body; aiohttp's 1 MiB
    # default would refuse a busy agent's batches (decompressed, they pass it).
    app = web.Application(client_max_size=256 * 1024 * 1024)
    app.router.add_get("/", intake.server_info)
    app.router.add_post("/config/v1/agents", intake.agent_config)
    app.router.add_post("/intake/v2/events", intake.intake)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    intake.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield intake
    finally:
        await runner.cleanup()

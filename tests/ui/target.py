"""A real HTTP target for HTTP-target tasks, on 127.0.0.1, in a thread of its own (the test's thread belongs to
Playwright's loop). `/flaky/<name>` answers 503 to its first request and 200 after, so a task with one retry
leaves a two-attempt timeline; any other path answers 200."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter

from aiohttp import web


class Target:
    def __init__(self) -> None:
        self.url = ""
        self.seen: Counter[str] = Counter()
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="ui-target", daemon=True)

    async def _handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.seen[request.path] += 1
        if request.path.startswith("/flaky/") and self.seen[request.path] == 1:
            return web.json_response({"error": "warming up"}, status=503)
        return web.json_response({"ok": True, "path": request.path})

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    def start(self) -> Target:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

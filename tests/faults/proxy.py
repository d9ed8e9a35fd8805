"""A real TCP relay between a Tasques server and Elasticsearch that can stall traffic, as a paused node would.

While paused, bytes from the client are read and held, not forwarded, and nothing comes back: requests hang
until the client gives up. On `resume()` the held bytes are delivered, so a request the client timed out on
is applied late, as it is by a node that was stopped (SIGSTOP) and continued. `pause_on(b"/_bulk")` pauses
just before the first chunk that contains the marker, so exactly that request (e.g. a claim's bulk write)
is the one left in limbo.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from types import TracebackType
from urllib.parse import urlsplit


class StallingProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._server: asyncio.Server | None = None
        self._running = asyncio.Event()
        self._running.set()
        self._marker: bytes | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._closing = False
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    async def start(self) -> StallingProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def pause(self) -> None:
        self._running.clear()

    def pause_on(self, marker: bytes) -> None:
        """Pause just before forwarding the first chunk from a client that contains `marker`."""
        self._marker = marker

    def resume(self) -> None:
        self._marker = None
        self._running.set()

    async def close(self) -> None:
        self.resume()
        if self._server is not None:
            self._server.close()
        # Abort, not close: a close waits to flush what a stalled peer never reads. Aborted sockets are closed
        # at once, so none outlives the proxy (it would be a ResourceWarning in some later test).
        self._closing = True
        for writer in list(self._writers):
            writer.transport.abort()
        # Cancel the connection handlers too: one still opening its upstream connection would otherwise start
        # pumps after this point and wait on them for ever (its handler's cancellation cancels them).
        pending = [*self._tasks, *self._handlers]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if self._closing:
            client_w.transport.abort()
            return
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        try:
            await self._relay(client_r, client_w)
        finally:
            self._handlers.discard(handler)

    async def _relay(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        writers = [client_w]
        self._writers.add(client_w)
        try:
            server_r, server_w = await asyncio.open_connection(*self._upstream)
            writers.append(server_w)
            self._writers.add(server_w)
            up = asyncio.create_task(self._pump(client_r, server_w, upstream=True))
            down = asyncio.create_task(self._pump(server_r, client_w, upstream=False))
            self._tasks.update((up, down))
            # The client may hang up (timed out) while its request is held: the request is still delivered on
            # resume, and the upstream connection stays open until the server closes it or the proxy closes.
            await asyncio.gather(up, down, return_exceptions=True)
            self._tasks.difference_update((up, down))
        finally:
            for writer in writers:
                writer.close()
                self._writers.discard(writer)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, upstream: bool) -> None:
        while True:
            if not upstream:
                await self._running.wait()
            data = await reader.read(65536)
            if not data:
                return
            if upstream and self._marker is not None and self._marker in data:
                self._marker = None
                self._running.clear()
            await self._running.wait()
            if writer.is_closing():
                if upstream:
                    return
                continue  # the client is gone: drain the server's answer and drop it
            writer.write(data)
            with contextlib.suppress(ConnectionError):
                await writer.drain()


class PausableProxy:
    """A `StallingProxy` on its own event loop in a thread, for tests that drive real processes synchronously."""

    def __init__(self, upstream_url: str) -> None:
        parts = urlsplit(upstream_url)
        self._proxy = StallingProxy(parts.hostname or "127.0.0.1", parts.port or 80)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="pausable-proxy", daemon=True)

    @property
    def url(self) -> str:
        return self._proxy.url

    def start(self) -> PausableProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._proxy.start(), self._loop).result(timeout=10)
        return self

    def pause(self) -> None:
        """Hold all traffic from now on; connections stay open and new ones are accepted."""
        self._loop.call_soon_threadsafe(self._proxy.pause)

    def resume(self) -> None:
        self._loop.call_soon_threadsafe(self._proxy.resume)

    def stop(self) -> None:
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._proxy.close(), self._loop).result(timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
        if not self._loop.is_running():
            self._loop.close()

    def __enter__(self) -> PausableProxy:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

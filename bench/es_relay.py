"""A counting HTTP relay in front of Elasticsearch: every request the server sends, by endpoint.

The idle and costs scenarios point the server at this relay, so "Elasticsearch requests per second" is what the server
actually sends (not the node's internal operations, which include scheduled refreshes and per-shard work).
Bodies and headers pass through unchanged (compressed or not); only hop-by-hop headers are dropped.
"""

from __future__ import annotations

import re
from collections import Counter

import aiohttp
from aiohttp import web

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "upgrade"}
_DOC_ID = re.compile(r"/(_doc|_create|_update)/[^/]+$")
KINDS = ("search", "bulk", "refresh", "get", "index", "other")


def kind_of(endpoint: str) -> str:
    """Which of KINDS an endpoint of `CountingRelay.endpoint` is: `get` covers GET/HEAD of one document and
    `_mget`; `index` every single-document write (index, create, update, delete)."""
    method, _, rest = endpoint.partition(" ")
    path = rest.split(" ", 1)[0]
    if path.endswith("/_search"):
        return "search"
    if path.endswith("/_bulk"):
        return "bulk"
    if path.endswith("/_refresh"):
        return "refresh"
    if path.endswith("/_mget") or (method in ("GET", "HEAD") and "/_doc/" in path):
        return "get"
    if _DOC_ID.search(path):
        return "index"
    return "other"


class CountingRelay:
    def __init__(self, upstream: str, index_prefix: str) -> None:
        self._upstream = upstream.rstrip("/")
        self._prefix = index_prefix
        self.counts: Counter[str] = Counter()
        self.bytes_sent = 0  # request bodies, as the server sent them (compressed or not)
        self.bytes_received = 0  # response bodies
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.url = ""

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def endpoint(self, method: str, path: str, body: bytes) -> str:
        """`POST /{prefix}-tasks/_search`: the index prefix and document ids replaced, so endpoints group.
        Searches are told apart by what they ask: an aggregation (the claim probe), the reaper's timed-out
        claims, or hits (claims, listings)."""
        path = _DOC_ID.sub(r"/\1/{id}", path.replace(self._prefix, "{prefix}"))
        if path.endswith("/_search"):
            what = "aggregation" if b'"aggs"' in body else "timed out" if b"times_out_at" in body else "hits"
            return f"{method} {path} ({what})"
        return f"{method} {path}"

    async def start(self) -> CountingRelay:
        self._session = aiohttp.ClientSession(auto_decompress=False, timeout=aiohttp.ClientTimeout(total=120))
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", self._relay)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _relay(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        body = await request.read()
        self.counts[self.endpoint(request.method, request.path, body)] += 1
        self.bytes_sent += len(body)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        async with self._session.request(
            request.method, f"{self._upstream}{request.path_qs}", headers=headers, data=body or None
        ) as upstream:
            payload = await upstream.read()
            self.bytes_received += len(payload)
            out = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP}
            return web.Response(status=upstream.status, headers=out, body=payload)

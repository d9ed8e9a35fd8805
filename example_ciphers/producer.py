"""The producer of the ciphers example: a small web app that enqueues cipher tasks on Tasques and shows results.

    python -m example_ciphers.producer --tasques http://127.0.0.1:8080 --port 8081

* `GET /`: the page (`index.html`): a form, and the results list, refreshed every second from `/api/results`.
* `POST /api/encode` `{"plaintext", "cipher", "key"?, "worker"?}`: validates, then creates one task on Tasques;
  202 `{"id", "queue", "kind", "cipher", "worker"}`. `cipher` is rot13, base64, caesar-N (e.g. caesar-3),
  vigenere (with `key`), md5 or sha256; `worker` is python, go or any (the default), which picks the queue:
  ciphers-py, ciphers-go, or ciphers, which both workers claim from. 400 `{"message"}` for invalid input.
* `GET /api/results?limit=N`: the newest N tasks (default 50) of the three queues, read from Tasques
  (`GET /tasques?queue=...`), with their state and, once done, the ciphertext and which worker produced it.

Tasques errors are passed on as 502 `{"message"}`. The producer keeps no state: everything it shows is in Tasques.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import logging
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from example_ciphers.ciphers import CipherError, parse_request

QUEUES = {"python": "ciphers-py", "go": "ciphers-go", "any": "ciphers"}  # requested worker -> queue
DEFAULT_RESULTS = 50
MAX_RESULTS = 1000  # Tasques' largest page
RETRY_TIMES = 2
PROCESSING_TIMEOUT = "30s"
INDEX_HTML = Path(__file__).resolve().parent / "index.html"

TASQUES_URL = web.AppKey("tasques_url", URL)
SESSION = web.AppKey("session", aiohttp.ClientSession)
INDEX = web.AppKey("index", str)

log = logging.getLogger("example_ciphers.producer")
routes = web.RouteTableDef()


class TasquesUnavailable(web.HTTPBadGateway):
    """Tasques could not be reached, or refused the call: 502 with what went wrong."""

    def __init__(self, message: str) -> None:
        super().__init__(text=json.dumps({"message": message}), content_type="application/json")


def _bad_request(message: str) -> web.Response:
    return web.json_response({"message": message}, status=400)


async def _tasques(request: web.Request, method: str, path: str, **kwargs: Any) -> Any:
    """Call Tasques at `path` (relative to its URL); the JSON of a 2xx answer, else TasquesUnavailable (502)."""
    url = request.app[TASQUES_URL].join(URL(path))
    try:
        async with request.app[SESSION].request(method, url, **kwargs) as resp:
            body = await resp.text()
    except (aiohttp.ClientError, TimeoutError) as e:
        raise TasquesUnavailable(f"Tasques is unreachable at {request.app[TASQUES_URL]}: {e!r}") from e
    if resp.status >= 300:
        raise TasquesUnavailable(f"Tasques answered {method} {url} with HTTP {resp.status}: {body[:500]}")
    try:
        return json.loads(body)
    except ValueError as e:
        raise TasquesUnavailable(f"Tasques answered {method} {url} with invalid JSON: {body[:200]!r}") from e


@routes.get("/")
async def index(request: web.Request) -> web.Response:
    return web.Response(text=request.app[INDEX], content_type="text/html")


@routes.post("/api/encode")
async def encode(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except ValueError:
        return _bad_request("the body must be a JSON object")
    if not isinstance(body, dict):
        return _bad_request("the body must be a JSON object")
    worker = body.get("worker") or "any"
    if worker not in QUEUES:
        return _bad_request(f"worker must be one of {', '.join(QUEUES)}")
    try:
        req = parse_request(body.get("cipher"), body.get("plaintext"), body.get("key"))
    except CipherError as e:
        return _bad_request(str(e))
    queue = QUEUES[worker]
    task = await _tasques(
        request,
        "POST",
        "tasques",
        json={
            "queue": queue,
            "kind": req.kind,
            "args": req.args,
            "context": {"cipher": req.cipher, "worker": worker},
            "retry_times": RETRY_TIMES,
            "processing_timeout": PROCESSING_TIMEOUT,
        },
    )
    log.info("enqueued %s/%s: %s for the %s worker", queue, task["id"], req.cipher, worker)
    return web.json_response(
        {"id": task["id"], "queue": queue, "kind": req.kind, "cipher": req.cipher, "worker": worker}, status=202
    )


def _result(task: dict[str, Any]) -> dict[str, Any]:
    """What the page shows of one task."""
    context = task.get("context") or {}
    claim = task.get("last_claimed") or {}
    outcome = claim.get("result") or {}
    success = outcome.get("success") or {}
    failure = outcome.get("failure") or {}
    return {
        "id": task["id"],
        "queue": task["queue"],
        "kind": task["kind"],
        "cipher": context.get("cipher", task["kind"]),
        "requested": context.get("worker"),
        "plaintext": (task.get("args") or {}).get("plaintext"),
        "state": task["state"],
        "attempted": task.get("attempted"),
        "enqueued_at": task.get("last_enqueued_at"),
        "ciphertext": success.get("ciphertext"),
        "worker": success.get("worker"),
        "worker_id": claim.get("worker_id"),
        "error": failure.get("message") or failure.get("reason"),
        "finished_at": outcome.get("at"),
    }


@routes.get("/api/results")
async def results(request: web.Request) -> web.Response:
    text = request.query.get("limit", str(DEFAULT_RESULTS))
    if not text.isdigit() or not 1 <= int(text) <= MAX_RESULTS:
        return _bad_request(f"limit must be a whole number from 1 to {MAX_RESULTS}")
    limit = int(text)
    pages = await asyncio.gather(
        *(_tasques(request, "GET", "tasques", params={"queue": q, "limit": str(limit)}) for q in QUEUES.values())
    )
    tasks = [task for page in pages for task in page["tasks"]]
    # Each page is newest first; RFC 3339 UTC timestamps of one server sort as text.
    tasks.sort(key=lambda t: (t.get("last_enqueued_at") or "", t["id"]), reverse=True)
    return web.json_response({"results": [_result(t) for t in tasks[:limit]]})


def create_app(tasques_url: str) -> web.Application:
    app = web.Application()
    app[TASQUES_URL] = URL(tasques_url.rstrip("/") + "/")
    swagger = str(app[TASQUES_URL].join(URL("swagger")))
    app[INDEX] = (
        INDEX_HTML.read_text()
        .replace("{{TASQUES_URL}}", html.escape(str(app[TASQUES_URL])))
        .replace("{{SWAGGER_URL}}", html.escape(swagger))
    )

    async def session(app: web.Application) -> AsyncIterator[None]:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s:
            app[SESSION] = s
            yield

    app.cleanup_ctx.append(session)
    app.add_routes(routes)
    return app


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m example_ciphers.producer", description="The ciphers example's web app."
    )
    parser.add_argument("--tasques", default="http://127.0.0.1:8080", help="the Tasques server (default: %(default)s)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8081, help="port to listen on (default: %(default)s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # the page polls every second
    log.info("producer on http://%s:%d, enqueuing on Tasques at %s", args.host, args.port, args.tasques)
    web.run_app(create_app(args.tasques), host=args.host, port=args.port, print=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())

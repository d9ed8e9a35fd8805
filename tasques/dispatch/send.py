"""One HTTP-target request: checked, sent through the guarded session, redirects followed only when asked.

The result is (success, outcome, final). `final` marks an attempt that can never succeed, so the task is not
retried: a refused destination, or a stored request the dispatcher would not send (invalid headers, a TLS
path outside `dispatch.tls_files_dir`).
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from typing import Any

import aiohttp
from yarl import URL

from tasques.dispatch.connect import destination
from tasques.dispatch.tls import TlsContexts, TlsMaterialError
from tasques.domain.http_target import HttpRequest, request_problems, url_problem
from tasques.domain.timeline import BODY_KEPT

KEPT_HEADERS = ("content-type", "content-length", "retry-after", "location", "date", "server")
REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Dropped when a redirect leaves the origin the task named.
_CREDENTIALS = ("authorization", "proxy-authorization", "cookie")


@dataclass(frozen=True)
class Sent:
    ok: bool
    outcome: dict[str, Any]
    final: bool = False


@dataclass(frozen=True)
class Sender:
    session: aiohttp.ClientSession
    tls: TlsContexts
    tls_files_dir: str | None
    max_redirects: int

    async def send(self, request: HttpRequest) -> Sent:
        loop = asyncio.get_running_loop()
        started = loop.time()

        def failed(error: str, *, final: bool = False, **fields: Any) -> Sent:
            outcome = {**fields, "error": error, "duration_ms": round((loop.time() - started) * 1000, 3)}
            return Sent(False, outcome, final)

        problems = request_problems(request, self.tls_files_dir)
        if problems:
            text = "; ".join(f"http_request.{f}: {p}" for f, p in problems)
            return failed(f"the request cannot be sent: {text}", final=True)
        try:
            async with asyncio.timeout(request.timeout.total_seconds()):
                ssl_option: ssl.SSLContext | bool = True
                if request.tls is not None:
                    ssl_option = await self.tls.get(request.tls)
                return await self._exchange(request, ssl_option, started)
        except TlsMaterialError as e:
            return failed(str(e), final=e.final)
        except _Refused as e:
            return failed(str(e), final=True)
        except TimeoutError:
            return failed(f"timed out after {request.timeout.total_seconds()}s")
        except (aiohttp.ClientError, ssl.SSLError, OSError, ValueError) as e:
            return failed(f"{type(e).__name__}: {e}")

    async def _exchange(self, request: HttpRequest, ssl_option: ssl.SSLContext | bool, started: float) -> Sent:
        loop = asyncio.get_running_loop()
        method = request.method
        data, content_type = request.payload()
        headers = dict(request.headers)
        if content_type is not None and not any(h.lower() == "content-type" for h in headers):
            headers["Content-Type"] = content_type
        url = URL(request.url)
        origin = url.origin()
        for hop in range(self.max_redirects + 1):
            with destination(url.raw_host or "") as dest:
                try:
                    async with self.session.request(
                        method, url, data=data, headers=headers, ssl=ssl_option, allow_redirects=False
                    ) as resp:
                        location = resp.headers.get("Location")
                        redirect = request.follow_redirects and resp.status in REDIRECTS and location is not None
                        if not redirect or hop == self.max_redirects:
                            body = await read_kept(resp.content)
                            outcome: dict[str, Any] = {
                                "status_code": resp.status,
                                "headers": {k: resp.headers[k] for k in KEPT_HEADERS if k in resp.headers},
                                "body": body.decode("utf-8", errors="replace"),
                                "duration_ms": round((loop.time() - started) * 1000, 3),
                            }
                            if redirect:
                                outcome["error"] = f"stopped after {self.max_redirects} redirects"
                            return Sent(200 <= resp.status < 300 and not redirect, outcome)
                        assert location is not None
                        url = resp.url.join(URL(location))
                except Exception as e:
                    if dest.refusals:
                        raise _Refused(dest.refusals[0]) from e
                    raise
            if (problem := url_problem(str(url))) is not None:
                raise ValueError(f"redirect to {str(url)[:200]!r}: {problem}")
            if resp.status == 303 or (resp.status in (301, 302) and method == "POST"):
                method, data = "GET", None
                headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
            if url.origin() != origin:
                headers = {k: v for k, v in headers.items() if k.lower() not in _CREDENTIALS}
        raise AssertionError("unreachable: the last hop returns")


class _Refused(Exception):
    pass


async def read_kept(content: aiohttp.StreamReader) -> bytes:
    """The first BODY_KEPT bytes of a body exactly (fewer only at its end): one read may return less."""
    kept = bytearray()
    while len(kept) < BODY_KEPT:
        chunk = await content.read(BODY_KEPT - len(kept))
        if not chunk:
            break
        kept += chunk
    return bytes(kept)

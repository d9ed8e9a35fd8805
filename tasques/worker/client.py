"""A small typed async client for the worker endpoints of the Tasques HTTP API.

It speaks only HTTP: its models are its own (they ignore fields they do not know, so newer servers keep
working), and every call carries the `X-TASQUES-WORKER-ID` header. Report, done, failed and unclaim also carry
`X-TASQUES-CLAIM-ID` when given the claim's `last_claimed.claim_id` (servers without claim ids return none, and
then none is sent), so a late call from an earlier attempt never acts on a newer claim of the same worker id.

Errors are split by what a caller can do about them:

* `ServerUnavailable`: the server could not be reached or answered 5xx/408/429; trying again later may work.
* `ClaimLost` (an `ApiError`): 403, 404 or 409 on a claimed task; this worker no longer holds the claim
  (it timed out and was reaped, was unclaimed, or the task was finished already).
* `ApiError`: any other 4xx; the request itself is wrong (bad queue name, missing credentials, ...).
"""

from __future__ import annotations

import base64
import functools
import json
import re
import socket
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Annotated, Any, Self

import aiohttp
from pydantic import BaseModel, BeforeValidator, ConfigDict, TypeAdapter, ValidationError
from yarl import URL

from tasques import __version__

WORKER_ID_HEADER = "X-TASQUES-WORKER-ID"
# What the worker is, shown by GET /workers; and the server's word that it is put to drain.
WORKER_VERSION_HEADER = "X-TASQUES-WORKER-VERSION"
WORKER_HOST_HEADER = "X-TASQUES-WORKER-HOST"
WORKER_DRAINING_HEADER = "X-TASQUES-WORKER-DRAINING"
_INFO_MAX_LENGTH = 200
CLAIM_ID_HEADER = "X-TASQUES-CLAIM-ID"
JsonDict = dict[str, Any]

_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


@functools.lru_cache(maxsize=256)  # every task answer carries one, nearly always the same few
def parse_duration(text: str) -> timedelta:
    """Parse a Go-style duration such as `"30m"`, `"1h30m"`, `"1.5s"` or `"500ms"` (as the server writes them)."""
    s = text.strip()
    if s in ("0", "+0", "-0"):
        return timedelta(0)
    sign = -1.0 if s.startswith("-") else 1.0
    s = s[1:] if s[:1] in ("+", "-") else s
    if not s:
        raise ValueError("empty duration")
    pos, seconds = 0, 0.0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if m is None:
            raise ValueError(f"invalid duration {text!r}: expected e.g. 500ms, 5s, 1m30s")
        seconds += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    return timedelta(seconds=sign * seconds)


def format_duration(value: float | timedelta) -> str:
    """Seconds (or a timedelta) as a Go-style duration in whole milliseconds, e.g. `"1500ms"`."""
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    return f"{max(0, round(seconds * 1000))}ms"


def basic_auth_header(user: str, password: str) -> str:
    """The `Authorization` header value for HTTP basic auth."""
    if ":" in user:
        raise ValueError("a basic-auth user name cannot contain ':'")
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def _duration(value: object) -> object:
    return parse_duration(value) if isinstance(value, str) else value


GoDuration = Annotated[timedelta, BeforeValidator(_duration)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Report(_Model):
    at: datetime
    data: JsonDict | None = None


class Result(_Model):
    at: datetime
    success: JsonDict | None = None
    failure: JsonDict | None = None


class LastClaimed(_Model):
    worker_id: str
    claim_id: str | None = None  # absent from servers (or claims) without claim ids
    claimed_at: datetime
    times_out_at: datetime
    last_report: Report | None = None
    result: Result | None = None


class Task(_Model):
    """A task as the server returns it."""

    id: str
    queue: str
    kind: str
    priority: int = 0
    run_at: datetime
    args: JsonDict | None = None
    context: JsonDict | None = None
    state: str
    retry_times: int
    attempted: int
    processing_timeout: GoDuration
    last_enqueued_at: datetime
    recurring_task_id: str | None = None
    last_claimed: LastClaimed | None = None


_TASKS = TypeAdapter(list[Task])


class TasquesError(Exception):
    """Base of the errors this client raises."""


class ServerUnavailable(TasquesError):
    """The server could not be reached, timed out, or answered with a transient status (5xx, 408, 429)."""


class ApiError(TasquesError):
    """The server refused the request (4xx)."""

    def __init__(self, status: int, message: str, details: list[JsonDict] | None = None) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
        self.details = details or []


class ClaimLost(ApiError):
    """403/404/409 on a claimed task: this worker does not hold the claim (any more)."""


_TRANSIENT_STATUSES = frozenset({408, 429})
_CLAIM_LOST_STATUSES = frozenset({403, 404, 409})

MAX_BATCH = 1000  # the server's limit of items per batch request


@dataclass(frozen=True)
class BatchItem:
    """One task of a batch call: the claim it was claimed with, and the data (none for unclaims)."""

    queue: str
    id: str
    claim_id: str | None = None
    data: JsonDict | None = None


# Per item: the task as the server answered it, or the error a single call would have raised.
BatchResult = Task | TasquesError


class SessionOwner:
    """Owns one aiohttp session (opened by `async with`, closed by `close()`), sending `self._headers`, and makes
    the calls: each answer's JSON, `ApiError` for a 4xx, `ServerUnavailable` for what a retry may cure."""

    _headers: dict[str, str]
    _session: aiohttp.ClientSession | None = None
    _base: URL
    _timeout: float

    async def __aenter__(self) -> Self:
        if self._session is None:
            self._session = aiohttp.ClientSession(headers=self._headers)
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _answered(self, headers: Mapping[str, str]) -> None:
        """Told the headers of every answer (the worker client reads its drain header here)."""

    async def _call(
        self,
        method: str,
        path: tuple[str, ...],
        body: JsonDict | None,
        limit: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        if self._session is None:
            raise RuntimeError(f"use {type(self).__name__} as an async context manager (`async with ...`)")
        url = self._base
        for segment in path:
            url = url / segment
        try:
            async with self._session.request(
                method, url, json=body, headers=headers, timeout=aiohttp.ClientTimeout(total=limit or self._timeout)
            ) as resp:
                text = (await resp.read()).decode("utf-8", errors="replace")
                status = resp.status
                self._answered(resp.headers)
        except (aiohttp.ClientError, TimeoutError) as e:
            raise ServerUnavailable(f"{method} {url}: {type(e).__name__}: {e}".rstrip(": ")) from e
        if status >= 500 or status in _TRANSIENT_STATUSES:
            raise ServerUnavailable(f"{method} {url}: HTTP {status}: {text[:200]}")
        if status >= 400:
            raise _api_error(status, text)
        try:
            return json.loads(text) if text else None
        except ValueError as e:
            raise ServerUnavailable(f"{method} {url}: the response is not JSON: {text[:200]!r}") from e


class TasquesClient(SessionOwner):
    """Async client for claim, report, done, failed, unclaim and get, and the batch calls `done_many`,
    `fail_many`, `report_many` and `unclaim_many`; use it as an async context manager.

    `request_timeout` bounds every call; a claim is allowed `block_for` on top of it. `token` (a `tq_` token or
    a JWT) is sent as `Authorization: Bearer`; `basic_auth` as basic auth (user: the project; password: a token).
    """

    def __init__(
        self,
        server_url: str,
        worker_id: str,
        *,
        basic_auth: tuple[str, str] | None = None,
        token: str | None = None,
        request_timeout: float = 30.0,
    ) -> None:
        url = URL(server_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"server_url must be an http(s) URL, got {server_url!r}")
        if not worker_id.strip():
            raise ValueError("worker_id must not be empty")
        self._base = url.with_path(url.path.rstrip("/"))
        self.worker_id = worker_id
        self._headers = {WORKER_ID_HEADER: worker_id, "User-Agent": "tasques-worker"}
        for header, value in ((WORKER_VERSION_HEADER, __version__), (WORKER_HOST_HEADER, socket.gethostname())):
            value = value.strip()[:_INFO_MAX_LENGTH]
            if value and value.isprintable():
                self._headers[header] = value
        # Set once a response said this worker is put to drain (`GET /workers`, `PUT /workers/{id}/drain`).
        self.draining = False
        if basic_auth is not None and token is not None:
            raise ValueError("give basic_auth or token, not both")
        if basic_auth is not None:
            self._headers["Authorization"] = basic_auth_header(*basic_auth)
        if token is not None:
            if not token.strip() or not token.isprintable():
                raise ValueError("token must be printable and not empty")
            self._headers["Authorization"] = f"Bearer {token.strip()}"
        self._timeout = request_timeout
        # (endpoint, items) -> batch requests answered, e.g. ("done", 100): how well completions batch.
        self.batch_sizes: Counter[tuple[str, int]] = Counter()

    @property
    def base_url(self) -> str:
        return str(self._base)

    async def claim(
        self,
        queues: list[str],
        amount: int = 1,
        block_for: float | timedelta | None = None,
        *,
        queue_weights: Mapping[str, int] | None = None,
    ) -> list[Task]:
        """Claim up to `amount` tasks, waiting up to `block_for` (the server's default when None) for one.
        `queue_weights` (queue -> 1 to 1000): split the amount among those queues by weight (`queues` weigh 1)."""
        body: JsonDict = {"queues": queues, "amount": amount}
        if queue_weights:
            body["queue_weights"] = dict(queue_weights)
        extra = 0.0
        if block_for is not None:
            body["block_for"] = format_duration(block_for)
            extra = block_for.total_seconds() if isinstance(block_for, timedelta) else float(block_for)
        else:
            extra = 60.0  # the server's longest allowed wait
        raw = await self._call("POST", ("tasques", "claims"), body, limit=self._timeout + extra)
        return _TASKS.validate_python(raw)

    # `claim_id` (the claim's `last_claimed.claim_id`): the server refuses the call (409, ClaimLost) unless
    # it is the task's current claim. Without it only the worker id is checked.

    async def report(
        self, queue: str, task_id: str, data: JsonDict | None = None, *, claim_id: str | None = None
    ) -> Task:
        """Report progress; this also pushes the claim's `times_out_at` out by the task's processing timeout."""
        return await self._task_call("PUT", ("tasques", "reports", queue, task_id), {"data": data}, claim_id)

    async def done(
        self, queue: str, task_id: str, data: JsonDict | None = None, *, claim_id: str | None = None
    ) -> Task:
        return await self._task_call("PUT", ("tasques", "done", queue, task_id), {"data": data}, claim_id)

    async def fail(
        self, queue: str, task_id: str, data: JsonDict | None = None, *, claim_id: str | None = None
    ) -> Task:
        return await self._task_call("PUT", ("tasques", "failed", queue, task_id), {"data": data}, claim_id)

    async def unclaim(self, queue: str, task_id: str, *, claim_id: str | None = None) -> Task:
        """Hand a claimed task back (state `queued`, the attempt not counted)."""
        return await self._task_call("DELETE", ("tasques", "claims", queue, task_id), None, claim_id)

    # Batch calls: one request for up to MAX_BATCH tasks, one result per item in request order. A problem
    # with the whole request (unreachable, 5xx, malformed answer; a 4xx for the request) is raised as the
    # single calls raise it; an item's own 403/404/409 comes back as its `ClaimLost`.

    async def done_many(self, items: Sequence[BatchItem]) -> list[BatchResult]:
        return await self._batch("done", items)

    async def fail_many(self, items: Sequence[BatchItem]) -> list[BatchResult]:
        return await self._batch("failed", items)

    async def report_many(self, items: Sequence[BatchItem]) -> list[BatchResult]:
        return await self._batch("reports", items)

    async def unclaim_many(self, items: Sequence[BatchItem]) -> list[BatchResult]:
        return await self._batch("unclaims", items, with_data=False)

    async def get_task(self, queue: str, task_id: str) -> Task:
        return Task.model_validate(await self._call("GET", ("tasques", queue, task_id), None))

    async def _task_call(self, method: str, path: tuple[str, ...], body: JsonDict | None, claim_id: str | None) -> Task:
        headers = {CLAIM_ID_HEADER: claim_id} if claim_id is not None else None
        try:
            return Task.model_validate(await self._call(method, path, body, headers=headers))
        except ApiError as e:
            if e.status in _CLAIM_LOST_STATUSES and not isinstance(e, ClaimLost):
                raise ClaimLost(e.status, e.message, e.details) from None
            raise

    async def _batch(self, endpoint: str, items: Sequence[BatchItem], *, with_data: bool = True) -> list[BatchResult]:
        if not 1 <= len(items) <= MAX_BATCH:
            raise ValueError(f"a batch holds 1 to {MAX_BATCH} items, not {len(items)}")
        wire: list[JsonDict] = [
            {"queue": i.queue, "id": i.id, "claim_id": i.claim_id, **({"data": i.data} if with_data else {})}
            for i in items
        ]
        raw = await self._call("POST", ("tasques", endpoint), {"tasks": wire})
        answers = raw.get("results") if isinstance(raw, dict) else None
        if not isinstance(answers, list) or not all(isinstance(a, dict) for a in answers):
            raise ServerUnavailable(f"POST /tasques/{endpoint}: the answer is not a batch result: {str(raw)[:200]}")
        if len(answers) != len(items):
            raise ServerUnavailable(f"POST /tasques/{endpoint}: {len(answers)} results for {len(items)} items")
        self.batch_sizes[(endpoint, len(items))] += 1
        return [_batch_result(a) for a in answers]

    def _answered(self, headers: Mapping[str, str]) -> None:
        if headers.get(WORKER_DRAINING_HEADER, "").lower() == "true":
            self.draining = True


def _api_error(status: int, text: str) -> ApiError:
    try:
        body = _ERROR_BODY.validate_json(text)
    except ValidationError:
        return ApiError(status, text[:500] or f"HTTP {status}")
    message = str(body.get("message") or f"HTTP {status}")
    details = body.get("details")
    return ApiError(status, message, details if isinstance(details, list) else None)


def _batch_result(answer: JsonDict) -> BatchResult:
    status = answer.get("status")
    if status == 200 and isinstance(answer.get("task"), dict):
        try:
            return Task.model_validate(answer["task"])
        except ValidationError as e:
            return ServerUnavailable(f"a batch result's task is malformed: {e}")
    if not isinstance(status, int) or status < 400 or status >= 500 or status in _TRANSIENT_STATUSES:
        return ServerUnavailable(f"a batch result with status {status}: {str(answer)[:200]}")
    error = answer.get("error")
    error = error if isinstance(error, dict) else {}
    message = str(error.get("message") or f"HTTP {status}")
    details = error.get("details")
    cls = ClaimLost if status in _CLAIM_LOST_STATUSES else ApiError
    return cls(status, message, details if isinstance(details, list) else None)


_ERROR_BODY = TypeAdapter(dict[str, Any])

__all__ = [
    "CLAIM_ID_HEADER",
    "MAX_BATCH",
    "WORKER_ID_HEADER",
    "ApiError",
    "BatchItem",
    "BatchResult",
    "ClaimLost",
    "LastClaimed",
    "Report",
    "Result",
    "ServerUnavailable",
    "Task",
    "TasquesClient",
    "TasquesError",
    "format_duration",
    "parse_duration",
]

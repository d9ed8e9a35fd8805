"""The Elastic APM agent at work for one server: a transaction per API request, a span per store call, background
transactions for the dispatcher and the leader jobs, an external span per HTTP-target request.

One `elasticapm.Client` per server: the transactions and spans reach the client that began them, since the
agent keeps the current transaction in a context variable and each transaction holds its own tracer. The
agent does keep one process-wide "current client" (`elasticapm.get_client()`, and a warning when a second
client is made); nothing here relies on it, so several servers can run in one process.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from types import TracebackType
from typing import Any, cast

import elasticapm
from aiohttp import web
from aiohttp.payload import BytesPayload
from aiohttp.typedefs import Handler, Middleware
from elasticapm.traces import Span, Transaction, capture_span, execution_context
from elasticapm.utils.disttracing import TraceParent

from tasques.config import ConfigError
from tasques.observe.requests import handle, route_of
from tasques.service.tracing import Label, Traced

WORKER_ID_HEADER = "X-TASQUES-WORKER-ID"  # the API's header; the api layer is not importable from here
# Request and response bodies read for the task ids they hold (a create, a claim) only up to this size.
_LABEL_BODY_MAX = 16 * 1024
_LABELLED_BODIES = frozenset({("POST", "/tasques"), ("POST", "/tasques/claims")})


def _current() -> Transaction | None:
    """The transaction in progress in this context. A task started during a request (a batch flush, the claim
    ticker) inherits the request's context: once that transaction has ended, it is not current any more."""
    transaction: Transaction | None = execution_context.get_transaction()
    if transaction is None or transaction.ended_time is not None:
        return None
    return transaction


def trace_ids() -> tuple[str | None, str | None]:
    transaction = _current()
    if transaction is None:
        return None, None
    return transaction.trace_parent.trace_id, transaction.id


class Agent:
    """The agent for one server: `start` makes the client (and its threads), `close` flushes and stops it."""

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self._settings = dict(settings)
        self.client: elasticapm.Client | None = None
        self.tracer = AgentTracer(self)
        self._store_spans: dict[tuple[str, str], capture_span] = {}

    def start(self) -> None:
        if self.client is not None:
            return
        client = elasticapm.Client(config=dict(self._settings))
        errors = client.config.errors
        if errors:
            client.close()
            raise ConfigError("apm: " + "; ".join(str(e) for e in errors.values()))
        self.client = client

    async def close(self) -> None:
        """Send what is queued (the agent waits up to its api_request_time) and stop the agent's threads."""
        client, self.client = self.client, None
        if client is not None:
            await asyncio.to_thread(client.close)

    @property
    def recording(self) -> bool:
        return self.client is not None and bool(self.client.config.is_recording)

    def store_span(self, backend: str, operation: str) -> AbstractContextManager[object]:
        """The `StoreHook`: a span type "db", subtype the backend, action the operation."""
        transaction = _current()
        if transaction is None or not transaction.is_sampled:
            return _NO_SPAN
        span = self._store_spans.get((backend, operation))
        if span is None:
            # capture_span keeps no per-call state (the agent's context variables do), so one per operation serves.
            span = self._store_spans[(backend, operation)] = capture_span(
                f"{backend} {operation}", span_type="db", span_subtype=backend, span_action=operation, leaf=True
            )
        return span

    def middleware(self) -> Middleware:
        @web.middleware
        async def apm_transaction(request: web.Request, handler: Handler) -> web.StreamResponse:
            client = self.client
            if client is None or not client.config.is_recording:
                return await handler(request)
            transaction = client.begin_transaction(
                # A worker or producer that sends `traceparent` continues its trace (headers are case-insensitive).
                "request",
                trace_parent=TraceParent.from_headers(cast(dict[str, str], request.headers)),
            )
            route = route_of(request)

            def ended(status: int | None, response: web.StreamResponse | None) -> None:
                if transaction is not None and transaction.is_sampled:
                    _describe(transaction, request, route, status, response)
                result = f"HTTP {status // 100}xx" if status is not None else "cancelled"
                if transaction is not None:
                    transaction.outcome = "unknown" if status is None else "failure" if status >= 500 else "success"
                client.end_transaction(f"{request.method} {route}", result)  # type: ignore[no-untyped-call]

            return await handle(request, handler, ended)

        return apm_transaction


def _describe(
    transaction: Transaction,
    request: web.Request,
    route: str,
    status: int | None,
    response: web.StreamResponse | None,
) -> None:
    labels: dict[str, Label] = {}
    info = request.match_info
    if "queue" in info:
        labels["queue"] = info["queue"]
    if "id" in info:
        labels["task_id" if route.startswith("/tasques") else "recurring_task_id"] = info["id"]
    worker = request.headers.get(WORKER_ID_HEADER)
    if worker:
        labels["worker_id"] = worker[:256]
    if (
        isinstance(response, web.Response)
        and status is not None
        and status < 300
        and (request.method, route) in _LABELLED_BODIES
    ):
        labels.update(_task_labels(response.body))
    if labels:
        transaction.label(**labels)
    transaction.context["request"] = {"method": request.method, "url": {"pathname": request.path}}
    if status is not None:
        transaction.context["response"] = {"status_code": status}


def _task_labels(body: Any) -> dict[str, Label]:
    """The task (or how many) a create or claim answered with."""
    if isinstance(body, BytesPayload):  # json_model's str body
        if (body.size or 0) > _LABEL_BODY_MAX:
            return {}
        body = body.decode()
    elif not isinstance(body, bytes) or len(body) > _LABEL_BODY_MAX:
        return {}
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    tasks = data if isinstance(data, list) else [data]
    out: dict[str, Label] = {"tasks": len(tasks)}
    if len(tasks) == 1 and isinstance(tasks[0], dict):
        out["task_id"] = tasks[0].get("id")
        out["queue"] = tasks[0].get("queue")
    return out


class _TracedSpan:
    """A span or transaction as the background loops see it (`Traced`)."""

    __slots__ = ("_span",)

    def __init__(self, span: Span | Transaction | None) -> None:
        self._span = span

    def label(self, **labels: Label) -> None:
        if self._span is not None:
            self._span.label(**labels)

    def http_status(self, status: int | None) -> None:
        span = self._span
        if not isinstance(span, Span):
            return
        if status is not None:
            span.context.setdefault("http", {})["status_code"] = status
        span.outcome = "success" if status is not None and status < 400 else "failure"


class _Background:
    """A background transaction: begun on enter (replacing whatever this context inherited), ended on exit."""

    __slots__ = ("_agent", "_began", "_kind", "_labels", "_name")

    def __init__(self, agent: Agent, name: str, kind: str, labels: Mapping[str, Label] | None) -> None:
        self._agent, self._name, self._kind, self._labels = agent, name, kind, labels
        self._began: Transaction | None = None

    def __enter__(self) -> Traced:
        client = self._agent.client
        transaction = self._began = client.begin_transaction(self._kind) if client is not None else None
        if transaction is not None and self._labels:
            transaction.label(**self._labels)
        return _TracedSpan(transaction)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        client, transaction = self._agent.client, self._began
        if client is None or transaction is None or _current() is not transaction:
            return
        failed = exc is not None and not isinstance(exc, asyncio.CancelledError)
        transaction.outcome = "failure" if failed else "success"
        client.end_transaction(self._name, "failure" if failed else "success")  # type: ignore[no-untyped-call]


class _HttpCall:
    """An exit span "external"/"http" for one HTTP-target request."""

    __slots__ = ("_span",)

    def __init__(self, method: str, url: str, labels: Mapping[str, Label] | None) -> None:
        from elasticapm.utils import get_host_from_url, sanitize_url

        self._span = capture_span(
            f"{method} {get_host_from_url(url)}",
            span_type="external",
            span_subtype="http",
            span_action=method,
            extra={"http": {"url": sanitize_url(url), "method": method}},
            labels=dict(labels) if labels else None,
            leaf=True,
        )

    def __enter__(self) -> Traced:
        span = self._span.__enter__()
        return _TracedSpan(span if isinstance(span, Span) else None)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._span.__exit__(exc_type, exc, tb)


class AgentTracer:
    """The `Tracer` of the background loops, on this server's client."""

    def __init__(self, agent: Agent) -> None:
        self._agent = agent

    def background(
        self, name: str, kind: str, labels: Mapping[str, Label] | None = None
    ) -> AbstractContextManager[Traced]:
        if not self._agent.recording:
            return _NO_TRACE
        return _Background(self._agent, name, kind, labels)

    def http_call(
        self, method: str, url: str, labels: Mapping[str, Label] | None = None
    ) -> AbstractContextManager[Traced]:
        transaction = _current()
        if transaction is None or not transaction.is_sampled:
            return _NO_TRACE
        return _HttpCall(method, url, labels)


_NO_SPAN: AbstractContextManager[object] = nullcontext()
_NO_TRACE: AbstractContextManager[Traced] = nullcontext(_TracedSpan(None))

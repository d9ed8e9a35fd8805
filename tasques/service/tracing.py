"""What the background loops (dispatcher, leader jobs) tell a tracer. Injected; the default records nothing.

The APM implementation lives in `tasques.observe.apm`; the loops only see this protocol, so they never import an
agent and pay one no-op call per pass when tracing is off."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Protocol

Label = str | int | float | bool | None


class Traced(Protocol):
    """A transaction or span in progress."""

    def label(self, **labels: Label) -> None: ...

    def http_status(self, status: int | None) -> None:
        """The response status of an outbound request (None: no response came); sets the outcome too."""


class Tracer(Protocol):
    def background(
        self, name: str, kind: str, labels: Mapping[str, Label] | None = None
    ) -> AbstractContextManager[Traced]:
        """A transaction around one background unit of work: a dispatch, a leader job's pass."""

    def http_call(
        self, method: str, url: str, labels: Mapping[str, Label] | None = None
    ) -> AbstractContextManager[Traced]:
        """A span around one outbound HTTP request, inside the current transaction (if any)."""


class _Untraced:
    def label(self, **labels: Label) -> None:
        pass

    def http_status(self, status: int | None) -> None:
        pass


_NOTHING: AbstractContextManager[Traced] = nullcontext(_Untraced())


class NoTracing:
    """The default tracer: nothing is recorded, and nothing is allocated per call."""

    def background(
        self, name: str, kind: str, labels: Mapping[str, Label] | None = None
    ) -> AbstractContextManager[Traced]:
        return _NOTHING

    def http_call(
        self, method: str, url: str, labels: Mapping[str, Label] | None = None
    ) -> AbstractContextManager[Traced]:
        return _NOTHING


NO_TRACING = NoTracing()

"""A store wrapper that runs every store coroutine inside the observers' context managers (timing, spans)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine, Sequence
from contextlib import AbstractContextManager
from typing import Any, cast

from tasques.store.base import Store

# Called with (backend, operation) when a store call starts; the context exits when it ends (with its error).
StoreHook = Callable[[str, str], AbstractContextManager[object]]


class ObservedStore:
    """Forwards everything to `inner`; each public coroutine method runs inside every hook, outermost first."""

    def __init__(self, inner: Store, hooks: Sequence[StoreHook]) -> None:
        self._inner = inner
        self._hooks = tuple(hooks)
        self._wrapped: dict[str, Callable[..., Coroutine[Any, Any, Any]]] = {}

    @property
    def inner(self) -> Store:
        return self._inner

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name.startswith("_") or not inspect.iscoroutinefunction(attr):
            return attr
        wrapped = self._wrapped.get(name)
        if wrapped is None:
            wrapped = self._wrapped[name] = self._wrap(name, attr)
        return wrapped

    def _wrap(
        self, operation: str, method: Callable[..., Coroutine[Any, Any, Any]]
    ) -> Callable[..., Coroutine[Any, Any, Any]]:
        backend = self._inner.kind
        hooks = self._hooks

        @functools.wraps(method)
        async def observed(*args: Any, **kwargs: Any) -> Any:
            if len(hooks) == 1:
                with hooks[0](backend, operation):
                    return await method(*args, **kwargs)
            return await _nested(hooks, backend, operation, method(*args, **kwargs))

        return observed


async def _nested(hooks: Sequence[StoreHook], backend: str, operation: str, call: Coroutine[Any, Any, Any]) -> Any:
    if not hooks:
        return await call
    with hooks[0](backend, operation):
        return await _nested(hooks[1:], backend, operation, call)


def observed(store: Store, hooks: Sequence[StoreHook]) -> Store:
    """`store` itself when there is nothing to observe, else the wrapper (typed as the protocol it forwards)."""
    return cast(Store, ObservedStore(store, hooks)) if hooks else store

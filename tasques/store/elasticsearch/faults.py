"""Store faults on Elasticsearch: an unreachable, slow or overloaded cluster is `StoreUnavailable`.

Every public coroutine of the store runs inside `translate_faults`, so the rule holds for every operation
and for clients built elsewhere: connection errors and timeouts (elastic-transport's `TransportError`s),
and answers that mean "overloaded or not ready" (429, 502, 503, 504) become `StoreUnavailable`. Other API
errors (a mapping conflict, a bad request) stay what they are: they are bugs, not outages.

A closed store refuses every operation but `open` and `close` with `StoreUnavailable`, before any request.

`own_writes` recognises a version conflict on a write that is our own: a request applied by Elasticsearch
whose answer was lost, sent again by a transport retry, meets the document it wrote itself.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from elasticsearch import ApiError, AsyncElasticsearch, SerializationError, TransportError

from tasques.domain.errors import StoreUnavailable

JsonDict = dict[str, Any]
C = TypeVar("C", bound=type)

# Statuses that say "not now" rather than "never": too many requests, a proxy without an upstream, a
# cluster without a master or with unassigned primaries (search_phase_execution_exception), a gateway timeout.
UNAVAILABLE_STATUSES = frozenset({429, 502, 503, 504})
# The attribute of a store that its close() set (and open() cleared).
CLOSED = "_closed"
# Marks a method `translate_faults` already wrapped.
_TRANSLATED = "__tasques_translates_faults__"


def unavailable(e: BaseException) -> StoreUnavailable | None:
    """The `StoreUnavailable` an Elasticsearch error amounts to, or None if it is no outage."""
    if isinstance(e, StoreUnavailable):
        return e
    if isinstance(e, TransportError) and not isinstance(e, SerializationError):
        return StoreUnavailable(f"elasticsearch did not answer ({type(e).__name__}: {e.message})")
    if isinstance(e, ApiError) and e.meta.status in UNAVAILABLE_STATUSES:
        return StoreUnavailable(f"elasticsearch answered {e.meta.status} ({e.error})")
    if isinstance(e, TimeoutError):
        return StoreUnavailable("elasticsearch did not answer in time")
    return None


def _translated(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    lifecycle = fn.__name__ in ("open", "close")

    @functools.wraps(fn)
    async def call(*args: Any, **kwargs: Any) -> Any:
        # After close(), a call (say a shielded load that outlived its caller) would make the client open a new
        # connection pool that nothing closes any more: refuse it as an outage instead.
        if not lifecycle and getattr(args[0], CLOSED, False):
            raise StoreUnavailable("the elasticsearch store is closed")
        try:
            return await fn(*args, **kwargs)
        except (TransportError, ApiError, TimeoutError) as e:
            outage = unavailable(e)
            if outage is None:
                raise
            raise outage from e

    setattr(call, _TRANSLATED, True)
    return call


def translate_faults(cls: C) -> C:
    """Wrap every public coroutine method of a store class, its own or inherited (the store is made of
    mixins), so outages leave it as `StoreUnavailable`. A method already wrapped is not wrapped again."""
    for name in dir(cls):
        attr = inspect.getattr_static(cls, name)
        if not name.startswith("_") and inspect.iscoroutinefunction(attr) and not hasattr(attr, _TRANSLATED):
            setattr(cls, name, _translated(attr))
    return cls


async def own_writes(client: AsyncElasticsearch, index: str, wanted: Mapping[str, JsonDict]) -> dict[str, JsonDict]:
    """Of the documents in `wanted` (`_id` -> the `_source` we tried to write), those whose current version is
    exactly that source: the write was ours and was applied (a retried request met it as a 409).

    Realtime mget, so it sees writes no refresh has made searchable yet. Returns `_id` -> the mget doc (with
    `_seq_no` and `_primary_term`)."""
    if not wanted:
        return {}
    resp = await client.mget(index=index, ids=list(wanted), realtime=True)
    return {
        doc["_id"]: doc for doc in resp.body["docs"] if doc.get("found") and doc.get("_source") == wanted[doc["_id"]]
    }

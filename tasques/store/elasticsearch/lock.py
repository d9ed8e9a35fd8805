"""The leader lock of the Elasticsearch store: one document per lock in `{prefix}-locks`, read only by
realtime GET, taken and renewed by conditional writes. See README.md, "Leader lock".
"""

from __future__ import annotations

import contextlib
from datetime import datetime

from elasticsearch import ConflictError, NotFoundError

from tasques.store.base import LockHolder, lease_live
from tasques.store.elasticsearch.core import StoreCore
from tasques.store.elasticsearch.documents import es_date
from tasques.store.elasticsearch.mappings import JsonDict


class LockMixin(StoreCore):
    """`acquire_lock`, `release_lock`, `lock_holder`."""

    async def acquire_lock(self, name: str, holder: str, now: datetime, expires_at: datetime) -> bool:
        es_date(now)
        document = {"holder": holder, "expires_at": es_date(expires_at)}
        held = self._held_locks.pop(name, None)
        if held is not None and held[0] == holder:
            # A renewal: conditional on the version we wrote last, so no read first (one request, not two).
            # A conflict means someone wrote the lock since: then look, as for a first take.
            with contextlib.suppress(ConflictError):
                return self._hold(name, holder, await self._write_lock(name, document, held[1], held[2]))
        stored = await self._get_lock(name)
        if stored is None:
            try:
                written = await self._client.index(index=self.names.locks, id=name, document=document, op_type="create")
            except ConflictError:
                return False
            return self._hold(name, holder, written.body)
        current = _holder_of(stored)
        if current.holder != holder and lease_live(current.expires_at, now):
            return False
        try:
            body = await self._write_lock(name, document, stored["_seq_no"], stored["_primary_term"])
        except ConflictError:
            return False
        return self._hold(name, holder, body)

    async def _write_lock(self, name: str, document: JsonDict, seq_no: int, primary_term: int) -> JsonDict:
        resp = await self._client.index(
            index=self.names.locks, id=name, document=document, if_seq_no=seq_no, if_primary_term=primary_term
        )
        return dict(resp.body)

    def _hold(self, name: str, holder: str, written: JsonDict) -> bool:
        self._held_locks[name] = (holder, written["_seq_no"], written["_primary_term"])
        return True

    async def release_lock(self, name: str, holder: str) -> None:
        self._held_locks.pop(name, None)
        stored = await self._get_lock(name)
        if stored is None or _holder_of(stored).holder != holder:
            return
        # A conflict: renewed, taken over or released meanwhile, so not ours to delete any more.
        with contextlib.suppress(ConflictError, NotFoundError):
            await self._client.delete(
                index=self.names.locks,
                id=name,
                if_seq_no=stored["_seq_no"],
                if_primary_term=stored["_primary_term"],
            )

    async def lock_holder(self, name: str, now: datetime) -> LockHolder | None:
        es_date(now)  # refuses a naive datetime, as acquire_lock does
        stored = await self._get_lock(name)
        if stored is None:
            return None
        current = _holder_of(stored)
        return current if lease_live(current.expires_at, now) else None

    async def _get_lock(self, name: str) -> JsonDict | None:
        """The lock document by realtime GET (with its `_seq_no` and `_primary_term`), or None when there is none."""
        try:
            resp = await self._client.get(index=self.names.locks, id=name)
        except NotFoundError:
            return None
        return dict(resp.body)


def _holder_of(document: JsonDict) -> LockHolder:
    source = document["_source"]
    return LockHolder(holder=source["holder"], expires_at=datetime.fromisoformat(source["expires_at"]))

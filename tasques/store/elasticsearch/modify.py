"""`modify_tasks`: read-modify-write of many tasks in one trip, as one conditional `_bulk`.

The read is the copy this instance wrote last (`recent.py`) when it has one, else one realtime `_mget` for all
the others (and, for ids not live, one archive search). A change that refuses a *copy* is not trusted (another
server may have moved the task on since): those are read again before the answer is final. The write is one
`_bulk` of `index` operations conditional on the version read; a lost race is that slot's `VersionConflict`,
and its copy is dropped so the caller's retry reads the document.
"""

from __future__ import annotations

from collections.abc import Sequence

from tasques.domain.errors import NotFound, VersionConflict
from tasques.domain.task import Task
from tasques.store.base import TaskChange, check_distinct
from tasques.store.elasticsearch.core import MAX_PAGE, StoreCore
from tasques.store.elasticsearch.documents import _OK, _item_error, _versioned
from tasques.store.elasticsearch.mappings import JsonDict
from tasques.store.elasticsearch.names import task_doc_id

# Where a read came from: the live index or our copy of it (writable), or the archive (answers NotFound).
_LIVE, _COPY, _ARCHIVED = "live", "copy", "archived"


class ModifyMixin(StoreCore):
    """Read-modify-write of many tasks: one `_bulk`, plus at most one `_mget` when copies are missing."""

    async def modify_tasks(self, changes: Sequence[TaskChange]) -> list[Task | Exception]:
        if not changes:
            return []
        check_distinct(changes)
        ids = [task_doc_id(c.project, c.queue, c.id) for c in changes]
        results: list[Task | Exception | None] = [None] * len(changes)
        writes: dict[int, tuple[Task, Task]] = {}
        unread: list[int] = []  # no copy, or the copy was refused: ask the index
        for i, doc_id in enumerate(ids):
            copy = self.recent.get(doc_id)
            if copy is None or not self._apply(changes[i], copy, _COPY, i, results, writes):
                unread.append(i)
        if unread:
            reads = await self._read_tasks([ids[i] for i in unread])
            for i in unread:
                found = reads.get(ids[i])
                if found is None:
                    results[i] = NotFound(f"no task {changes[i].id} in queue {changes[i].queue}")
                elif isinstance(found, Exception):
                    results[i] = found  # unreadable (corrupt, or sealed with a key we lack): this slot's answer
                else:
                    self._apply(changes[i], found[0], found[1], i, results, writes)
        if writes:
            await self._write_changes(ids, writes, results)
        return [r if r is not None else VersionConflict("not written") for r in results]

    def _apply(
        self,
        item: TaskChange,
        read: Task,
        source: str,
        slot: int,
        results: list[Task | Exception | None],
        writes: dict[int, tuple[Task, Task]],
    ) -> bool:
        """Apply one change; False only when it refused a copy (so the index must be asked)."""
        try:
            changed = item.change(read)
            if (changed.project, changed.queue, changed.id) != (read.project, read.queue, read.id):
                raise ValueError(f"a change must not move task {read.project}/{read.queue}/{read.id}")
        except Exception as e:
            if source == _COPY:
                return False
            results[slot] = e
            return True
        if source == _ARCHIVED:
            results[slot] = NotFound(f"no task {item.id} in queue {item.queue} (archived)")
        else:
            writes[slot] = (read, changed)
        return True

    async def _read_tasks(self, doc_ids: list[str]) -> dict[str, tuple[Task, str] | Exception]:
        """The live tasks (realtime), and for the ids not live, archived ones; why one cannot be read, in its place."""
        out: dict[str, tuple[Task, str] | Exception] = {}
        resp = await self._client.mget(index=self.names.tasks, ids=doc_ids)
        for doc in resp.body["docs"]:
            if doc.get("found"):
                try:
                    out[doc["_id"]] = (self.task_of(doc), _LIVE)
                except ValueError as e:  # one unreadable task fails its own slot, never the batch
                    out[doc["_id"]] = e
        missing = [d for d in doc_ids if d not in out]
        for start in range(0, len(missing), MAX_PAGE):
            chunk = missing[start : start + MAX_PAGE]
            found = await self._client.search(
                index=self.names.archive_alias,
                query={"ids": {"values": chunk}},
                size=len(chunk),
                seq_no_primary_term=True,
                track_total_hits=False,
            )
            for hit in found.body["hits"]["hits"]:
                out.setdefault(hit["_id"], (self.task_of(hit), _ARCHIVED))
        return out

    async def _write_changes(
        self, ids: list[str], writes: dict[int, tuple[Task, Task]], results: list[Task | Exception | None]
    ) -> None:
        slots = sorted(writes)
        ops: list[JsonDict] = []
        for i in slots:
            ops.extend(self._conditional_index(*writes[i]))
        claimable = any(writes[i][1].claimable for i in slots)
        items = await self._bulk(ops, claimable=claimable)
        mine = await self._own(items, ops)
        for i, item in zip(slots, items, strict=True):
            item = mine.get(item["_id"], item)
            changed = writes[i][1]
            if item.get("found") or item["status"] in _OK:
                stored = _versioned(changed, item["_seq_no"], item["_primary_term"])
                self.recent.wrote(ids[i], stored)
                results[i] = stored
            elif item["status"] == 409:
                self.recent.forget(ids[i])
                results[i] = VersionConflict(f"task {changed.id} in queue {changed.queue} changed since it was read")
            else:
                self.recent.forget(ids[i])
                results[i] = _item_error("update", item)

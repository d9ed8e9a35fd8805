"""Archiving of the Elasticsearch store: finished tasks move from the live index to the archive alias.

`archive_finished` searches finished tasks a page at a time and `_archive` moves each page: copy into the
archive, refresh it, delete the live tasks conditionally, drop the copies of tasks that changed meanwhile.
Without ILM it also runs the archive maintenance (`maintain_archive`, in `archive.py`) now and then.
See README.md, "Archive".
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from elasticsearch import ApiError, TransportError

from tasques.store.elasticsearch.archive import MaintenanceResult
from tasques.store.elasticsearch.core import StoreCore, log
from tasques.store.elasticsearch.documents import _FINISHED, _OK, es_date
from tasques.store.elasticsearch.mappings import JsonDict
from tasques.store.elasticsearch.names import doc_log_fields
from tasques.store.unreadable import MAX_UNREADABLE


class ArchivingMixin(StoreCore):
    """Moving finished tasks to the archive, and the archive's maintenance without ILM."""

    async def archive_finished(self, finished_before: datetime, limit: int) -> int:
        if limit <= 0:
            return 0
        before_es = es_date(finished_before)
        moved = 0
        # A page at a time; moved tasks leave the live index, so each search starts from the oldest again.
        while moved < limit:
            size = min(self._settings.page_size, limit - moved)
            await self.refresher.ensure_fresh()
            resp = await self._client.search(
                index=self.names.tasks,
                query={
                    "bool": {
                        "filter": [
                            {"terms": {"state": _FINISHED}},
                            {"range": {"metadata.modified_at": {"lt": before_es}}},
                        ],
                        "must_not": [{"ids": {"values": sorted(self._unarchivable)}}],
                    }
                },
                sort=[{"metadata.modified_at": "asc"}],
                size=size,
                seq_no_primary_term=True,
                track_total_hits=False,
            )
            hits: list[JsonDict] = resp.body["hits"]["hits"]
            page_moved = await self._archive(hits) if hits else 0
            moved += page_moved
            if page_moved < size:
                break  # nothing older left, or some could not move: the next pass retries them
        await self._maybe_maintain_archive()
        return moved

    async def _archive(self, hits: list[JsonDict]) -> int:
        # 1. Copy into the archive, 2. make the copies searchable, 3. delete the live tasks if unchanged since
        # the search, 4. drop the copies of tasks that did change. Step 2 before 3 is what lets inserts check
        # the archive after creating (see `_refuse_archived`).
        archived_at = es_date(datetime.now(UTC))
        ops: list[JsonDict] = []
        for hit in hits:
            # require_alias: never auto-create a plain index named like the alias if the archive is missing.
            ops.append({"index": {"_index": self.names.archive_alias, "_id": hit["_id"], "require_alias": True}})
            ops.append({**hit["_source"], "archived_at": archived_at})
        copied: dict[str, str] = {}  # _id -> the concrete archive index holding the copy
        for item in await self._bulk(ops, live=False):
            if item["status"] in _OK:
                copied[item["_id"]] = item["_index"]
            else:
                # Left live and passed over from now on, so it cannot hold up the tasks behind it.
                if len(self._unarchivable) < MAX_UNREADABLE:
                    self._unarchivable.add(item["_id"])
                log.warning("task %s not archived; it stays live: %s", item["_id"], item.get("error"),
                            extra=doc_log_fields(item["_id"]))  # fmt: skip
        if not copied:
            return 0
        await self._client.indices.refresh(index=self.names.archive_alias)
        deletes: list[JsonDict] = [
            {
                "delete": {
                    "_index": self.names.tasks,
                    "_id": hit["_id"],
                    "if_seq_no": hit["_seq_no"],
                    "if_primary_term": hit["_primary_term"],
                }
            }
            for hit in hits
            if hit["_id"] in copied
        ]
        moved = 0
        conflicted: list[str] = []
        for item in await self._bulk(deletes, claimable=False):
            if item["status"] in _OK:
                moved += 1
            elif item["status"] == 409:
                conflicted.append(item["_id"])
            else:
                log.warning("archived task %s not deleted from the live index: %s", item["_id"], item.get("error"),
                            extra=doc_log_fields(item["_id"]))  # fmt: skip
        if conflicted:
            await self._undo_archive_copies(conflicted, copied)
        return moved

    async def _undo_archive_copies(self, conflicted: list[str], copied: dict[str, str]) -> None:
        """Tasks that changed between the search and the delete stay live: drop their archive copies.

        A conflict on a task that is gone means another archiver moved it: its copy is the archived one.
        """
        resp = await self._client.mget(index=self.names.tasks, ids=conflicted, source=False)
        still_live = [doc["_id"] for doc in resp.body["docs"] if doc.get("found")]
        if not still_live:
            return
        for doc_id in still_live:
            log.warning("task %s changed while being archived: it stays live", doc_id, extra=doc_log_fields(doc_id))
        ops: list[JsonDict] = [{"delete": {"_index": copied[doc_id], "_id": doc_id}} for doc_id in still_live]
        await self._bulk(ops, live=False)
        await self._client.indices.refresh(index=self.names.archive_alias)

    async def maintain_archive(self, now: datetime) -> MaintenanceResult:
        """Without ILM: roll the archive over when due and delete indices past retention. No-op under ILM.

        Unless told otherwise, `archive_finished` calls this itself, with the wall clock, at most every
        `maintain_archive_every` seconds.
        """
        es_date(now)
        return await self.archive.maintain(now)

    async def _maybe_maintain_archive(self) -> None:
        every = self._maintain_every
        if every is None or self.archive.ilm is not False or time.monotonic() < self._next_maintenance:
            return
        self._next_maintenance = time.monotonic() + every
        try:
            await self.archive.maintain(datetime.now(UTC))
        except (ApiError, TransportError):
            log.exception("archive maintenance failed; will retry")

"""Dependencies on Elasticsearch: realtime reads of many tasks, dependents by a terms query, the waiting sweep.

`get_tasks` is one realtime `mget` on the live index, then an `ids` search of the archive alias for the misses
(an `mget` cannot address an alias over several indices; the archiver makes an archive copy searchable before
it deletes the live task, so a task being archived is found in one or the other). `find_dependents` searches
`depends_on.id` (the mapping flattens the objects, so a hit may name the id under another queue) and keeps the
exact (queue, id) matches.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tasques.domain.limits import DEFAULT_PROJECT
from tasques.domain.task import Task, TaskKey, TaskState
from tasques.store.elasticsearch.core import MAX_PAGE, StoreCore
from tasques.store.elasticsearch.mappings import JsonDict
from tasques.store.elasticsearch.names import task_doc_id

_WAITING = TaskState.WAITING.value


class DependenciesMixin(StoreCore):
    async def get_tasks(self, keys: Sequence[TaskKey], *, project: str = DEFAULT_PROJECT) -> list[Task | None]:
        if not keys:
            return []
        doc_ids = [task_doc_id(project, k.queue, k.id) for k in keys]
        found: dict[str, Task] = {}
        unique = list(dict.fromkeys(doc_ids))
        for start in range(0, len(unique), MAX_PAGE):
            resp = await self._client.mget(index=self.names.tasks, ids=unique[start : start + MAX_PAGE])
            for doc in resp.body["docs"]:
                if doc.get("found"):
                    found[doc["_id"]] = self.task_of(doc)
        missing = [d for d in unique if d not in found]
        for doc_id, hit in (await self._archived_hits(missing, source=True)).items():
            found.setdefault(doc_id, self.task_of(hit))
        return [found.get(d) for d in doc_ids]

    async def find_dependents(
        self, keys: Sequence[TaskKey], *, project: str = DEFAULT_PROJECT, limit: int = 1000
    ) -> list[Task]:
        if not keys or limit <= 0:
            return []
        wanted = {(k.queue, k.id) for k in keys}
        query: JsonDict = {
            "bool": {
                "filter": [
                    {"term": {"project": project}},
                    {"term": {"state": _WAITING}},
                    {"terms": {"depends_on.id": sorted({k.id for k in keys})}},
                ]
            }
        }
        await self.refresher.ensure_fresh()
        out: list[Task] = []
        after: list[Any] | None = None
        size = min(self._settings.page_size, MAX_PAGE)
        while len(out) < limit:
            resp = await self._client.search(
                index=self.names.tasks,
                query=query,
                sort=[{"queue": "asc"}, {"id": "asc"}],
                size=size,
                search_after=after,
                seq_no_primary_term=True,
                track_total_hits=False,
            )
            page: list[JsonDict] = resp.body["hits"]["hits"]
            for hit in page:
                task = self._parse(self.task_of, "tasks", hit)
                if task is not None and any((d.queue, d.id) in wanted for d in task.depends_on or ()):
                    out.append(task)
            if len(page) < size:
                break
            after = page[-1]["sort"]
        return out[:limit]

    async def waiting_tasks(self, after: tuple[str, str, str] | None, limit: int) -> list[Task]:
        if limit <= 0:
            return []
        await self.refresher.ensure_fresh()
        resp = await self._client.search(
            index=self.names.tasks,
            query={"bool": {"filter": [{"term": {"state": _WAITING}}]}},
            sort=[{"project": "asc"}, {"queue": "asc"}, {"id": "asc"}],
            size=min(limit, MAX_PAGE),
            search_after=list(after) if after is not None else None,
            seq_no_primary_term=True,
            track_total_hits=False,
        )
        parsed = (self._parse(self.task_of, "tasks", hit) for hit in resp.body["hits"]["hits"])
        return [t for t in parsed if t is not None]

"""The Elasticsearch store: any number of stateless servers sharing one cluster.

Layout, versioning, claims, refreshes and the archive are described in README.md next to this file. In short:
one live index `{prefix}-tasks` (`_id` = `{queue}/{id}`), conditional writes on `_seq_no`/`_primary_term`
(never scripts), claims as one search plus conditional `_bulk` writes that skip lost races, and a coalesced
refresh before every search so each instance reads its own writes.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from elasticsearch import ApiError, AsyncElasticsearch, ConflictError, NotFoundError, TransportError

from tasques.config import ES_MAX_PAGE, ElasticsearchConfig
from tasques.domain.errors import (
    AlreadyExists,
    FieldProblem,
    InvalidInput,
    NotFound,
    StoreUnavailable,
    TasquesError,
    VersionConflict,
)
from tasques.domain.http_target import TaskTarget
from tasques.domain.queue import QueueSettings
from tasques.domain.recurring import RecurringTask
from tasques.domain.task import CLAIMABLE_STATES, FINISHED_STATES, Task, TaskState, Version, claim_order_key
from tasques.domain.timeline import Attempt
from tasques.store.base import QueueCounts, TaskFilter, TaskPage
from tasques.store.cursor import decode_cursor, encode_cursor
from tasques.store.elasticsearch.archive import ArchiveLifecycle, MaintenanceResult, error_type
from tasques.store.elasticsearch.faults import UNAVAILABLE_STATUSES, own_writes, translate_faults
from tasques.store.elasticsearch.mappings import (
    IndexNames,
    JsonDict,
    lock_mappings,
    locks_template_body,
    queue_settings_mappings,
    queues_template_body,
    recurring_mappings,
    recurring_template_body,
    small_index_settings,
    task_doc_id,
    task_mappings,
    tasks_settings,
    tasks_template_body,
    timeline_mappings,
    timeline_template_body,
)
from tasques.store.elasticsearch.refresh import CoalescedRefresher

log = logging.getLogger("tasques.store.elasticsearch")

# index.max_result_window: the largest page one search may return. Reads of every record page through with
# `search_after` (settings.page_size at a time); only claims and `list_tasks` pages are bounded by this.
MAX_PAGE = ES_MAX_PAGE
# A claim re-searches at most this many times when it lost races and is still short of its limit.
CLAIM_ROUNDS = 5
# A claim that sees nothing refreshes at most this often (seconds) to find other servers' new tasks.
EMPTY_CLAIM_REFRESH_GAP = 0.1
# Past this many of our own unrefreshed claims/dones, a claim refreshes instead of excluding them by id.
MAX_STALE_EXCLUDED = 2_000
# Without ILM, archive_finished rolls over and prunes the archive at most this often (wall-clock seconds).
ARCHIVE_MAINTENANCE_EVERY = 60.0
_DELETE_RETRIES = 5
# Unreadable (or unarchivable) documents remembered, so searches exclude them; beyond this, only logged.
MAX_UNREADABLE = 10_000

_NO_VERSION: Mapping[str, Any] = {"metadata": {"version"}}
_CLAIMABLE = sorted(s.value for s in CLAIMABLE_STATES)
_FINISHED = sorted(s.value for s in FINISHED_STATES)
_OK = (200, 201)


class ElasticsearchStoreError(RuntimeError):
    """Elasticsearch refused a write for a reason other than a version conflict (a bug or an overload)."""


def build_client(settings: ElasticsearchConfig) -> AsyncElasticsearch:
    """An `AsyncElasticsearch` for the configured addresses, credentials and CA."""
    # Timeouts are never retried (a timed-out write may still be applied, and a retry would double the wait),
    # nor are overload answers (the API answers 503 with Retry-After instead); connection errors only
    # `max_retries` times, so one request takes at most (max_retries + 1) x request_timeout.
    kwargs: dict[str, Any] = {
        "request_timeout": settings.request_timeout.total_seconds(),
        "max_retries": settings.max_retries,
        "retry_on_timeout": False,
        "retry_on_status": (),
    }
    if settings.api_key:
        kwargs["api_key"] = settings.api_key
    elif settings.user is not None:
        kwargs["basic_auth"] = (settings.user, settings.password or "")
    if settings.ca_certs:
        kwargs["ca_certs"] = settings.ca_certs
    return AsyncElasticsearch(list(settings.addresses), **kwargs)


@translate_faults
class ElasticsearchStore:
    """`Store` on Elasticsearch (see `tasques.store.base` for the contract, README.md for the design)."""

    kind: str = "elasticsearch"

    def __init__(
        self,
        client: AsyncElasticsearch,
        settings: ElasticsearchConfig,
        *,
        owns_client: bool = False,
        maintain_archive_every: float | None = ARCHIVE_MAINTENANCE_EVERY,
    ) -> None:
        """`maintain_archive_every`: seconds between the archive maintenance runs `archive_finished` makes
        without ILM; None leaves maintenance to explicit `maintain_archive` calls."""
        self._client = client
        self._maintain_every = maintain_archive_every
        self._settings = settings
        self._owns_client = owns_client
        self.names = IndexNames(settings.index_prefix)
        self.archive = ArchiveLifecycle(client, self.names, settings)
        self.refresher = CoalescedRefresher(self._refresh_tasks)
        self._opened = False
        self._next_maintenance = 0.0
        # _ids this instance's claims are writing right now: its other claims skip them rather than lose the race.
        self._claiming: set[str] = set()
        # _id -> write generation of tasks this instance took out of the claimable set (see _stale_for_claims).
        self._unrefreshed: OrderedDict[str, int] = OrderedDict()
        # `{what}/{_id}` of documents that could not be parsed, and how many times one was skipped (`_parse`).
        self._unreadable: set[str] = set()
        self.skipped_unreadable = 0
        # _ids of finished tasks the archive refused: later archive passes look past them.
        self._unarchivable: set[str] = set()

    @classmethod
    def from_config(
        cls, settings: ElasticsearchConfig, *, maintain_archive_every: float | None = ARCHIVE_MAINTENANCE_EVERY
    ) -> ElasticsearchStore:
        """A store with its own client, closed by `close()`."""
        return cls(build_client(settings), settings, owns_client=True, maintain_archive_every=maintain_archive_every)

    # Lifecycle

    async def open(self) -> None:
        if self._opened:
            return
        n, s = self.names, self._settings
        await self._client.indices.put_index_template(name=n.template("tasks"), body=tasks_template_body(n, s))
        await self._client.indices.put_index_template(name=n.template("recurring"), body=recurring_template_body(n, s))
        await self._client.indices.put_index_template(name=n.template("locks"), body=locks_template_body(n, s))
        await self._client.indices.put_index_template(name=n.template("queues"), body=queues_template_body(n, s))
        await self._client.indices.put_index_template(name=n.template("timeline"), body=timeline_template_body(n, s))
        await self.archive.setup()
        await self._ensure_index(n.tasks, task_mappings(), tasks_settings(s))
        await self._ensure_index(n.recurring, recurring_mappings(), small_index_settings(s))
        await self._ensure_index(n.locks, lock_mappings(), small_index_settings(s))
        await self._ensure_index(n.queues, queue_settings_mappings(), small_index_settings(s))
        await self._ensure_index(n.timeline, timeline_mappings(), small_index_settings(s))
        self._opened = True

    async def _ensure_index(self, index: str, mappings: JsonDict, settings: JsonDict) -> None:
        try:
            await self._client.indices.create(index=index)  # settings and mappings come from the template
        except ApiError as e:
            # Already there, maybe created a moment ago by another server starting at once: bring its mapping
            # (new fields only; a changed type fails loudly) and dynamic settings up to date.
            if error_type(e) != "resource_already_exists_exception":
                raise
            await self._client.indices.put_mapping(index=index, body=mappings)
            dynamic = {k: v for k, v in settings.items() if k != "number_of_shards"}
            await self._client.indices.put_settings(index=index, settings=dynamic)

    async def close(self) -> None:
        await self.refresher.close()
        self._opened = False
        if self._owns_client:
            await self._client.close()

    async def _refresh_tasks(self) -> None:
        await self._client.indices.refresh(index=self.names.tasks)

    async def _bulk(self, operations: list[JsonDict], *, live: bool = True, claimable: bool = True) -> list[JsonDict]:
        """One `_bulk`; returns its items. Writes to the live index count as writes for read-your-writes;
        `claimable=False` says none of them can make a task claimable (claims, done, deletes)."""
        generation = 0
        try:
            resp = await self._client.bulk(operations=operations)
        finally:
            if live:
                generation = self.refresher.wrote(claimable=claimable)
        items = [next(iter(item.values())) for item in resp.body["items"]]
        if live and not claimable:
            self._took_out((item["_id"] for item in items if item["status"] in _OK), generation)
        return items

    def _took_out(self, doc_ids: Iterable[str], generation: int) -> None:
        """Remember tasks this instance made unclaimable, until a refresh shows it to searches."""
        for doc_id in doc_ids:
            self._unrefreshed.pop(doc_id, None)
            self._unrefreshed[doc_id] = generation

    def _stale_for_claims(self) -> list[str]:
        """Ids a claim search must skip: made unclaimable by us since the last refresh (the index still
        shows them claimable). Oldest entries go as refreshes cover them."""
        covered = self.refresher.covered
        while self._unrefreshed:
            doc_id, generation = next(iter(self._unrefreshed.items()))
            if generation > covered:
                break
            del self._unrefreshed[doc_id]
        return list(self._unrefreshed)

    async def _search_all(
        self, index: str, query: JsonDict, sort: list[JsonDict], limit: int | None = None, **kwargs: Any
    ) -> list[JsonDict]:
        """Every hit of `query` (the first `limit` if given), `page_size` per search, paged with `search_after`.

        `sort` must be unique per document: then a record that exists throughout the scan is returned exactly
        once, even if records are written between pages (no point-in-time is needed for that)."""
        hits: list[JsonDict] = []
        after: list[Any] | None = None
        while limit is None or len(hits) < limit:
            size = self._settings.page_size if limit is None else min(self._settings.page_size, limit - len(hits))
            resp = await self._client.search(
                index=index, query=query, sort=sort, size=size, search_after=after, track_total_hits=False, **kwargs
            )
            page: list[JsonDict] = resp.body["hits"]["hits"]
            hits.extend(page)
            if len(page) < size:
                break
            after = page[-1]["sort"]
        return hits

    def _parse(self, parse: Callable[[JsonDict], _R], what: str, doc: JsonDict) -> _R | None:
        """Parse a document for a loop or a claim. One that cannot be parsed (corrupt, or written by another
        version) is logged once, counted and remembered (task searches exclude it), and skipped: it never
        fails the pass for the others."""
        try:
            return parse(doc)
        except Exception as e:
            self.skipped_unreadable += 1
            key = f"{what}/{doc.get('_id')}"
            if key not in self._unreadable and len(self._unreadable) < MAX_UNREADABLE:
                self._unreadable.add(key)
                log.error("stored document %s cannot be read; skipped: %r", key, e)
            return None

    def _unreadable_tasks(self) -> set[str]:
        return {key.removeprefix("tasks/") for key in self._unreadable if key.startswith("tasks/")}

    # Tasks

    async def insert_task(self, task: Task) -> Task:
        [stored] = await self.insert_tasks([task])
        if isinstance(stored, AlreadyExists):
            raise stored
        return stored

    async def insert_tasks(self, tasks: Sequence[Task]) -> list[Task | AlreadyExists]:
        if not tasks:
            return []
        index = self.names.tasks
        ops: list[JsonDict] = []
        for task in tasks:
            ops.append({"create": {"_index": index, "_id": task_doc_id(task.queue, task.id)}})
            ops.append(_source_of(task))
        items = await self._bulk(ops)
        results: list[Task | AlreadyExists] = []
        created: dict[str, tuple[int, JsonDict]] = {}
        # A 409 is AlreadyExists even if the request was a transport retry of our own create: the same task
        # twice in one batch has the same source, so "our own write" cannot be told apart here.
        for task, item in zip(tasks, items, strict=True):
            status = item["status"]
            if status in _OK:
                created[item["_id"]] = (len(results), item)
                results.append(_versioned(task, item["_seq_no"], item["_primary_term"]))
            elif status == 409:
                results.append(AlreadyExists(f"task {task.id} already exists in queue {task.queue}"))
            else:
                raise _item_error("insert", item)
        if created:
            await self._refuse_archived(tasks, created, results)
        return results

    async def _refuse_archived(
        self, tasks: Sequence[Task], created: dict[str, tuple[int, JsonDict]], results: list[Task | AlreadyExists]
    ) -> None:
        """Undo the creation of tasks whose id is archived.

        Checked after creating, not before: the archiver makes its archive copy searchable before it deletes
        the live task, so once a create has succeeded the archive check cannot miss a concurrent archiving.
        """
        archived = [doc_id for doc_id in await self._archived_ids(list(created)) if doc_id in created]
        if not archived:
            return
        ops: list[JsonDict] = []
        for doc_id in archived:
            _, item = created[doc_id]
            ops.append(
                {
                    "delete": {
                        "_index": self.names.tasks,
                        "_id": doc_id,
                        "if_seq_no": item["_seq_no"],
                        "if_primary_term": item["_primary_term"],
                    }
                }
            )
        for doc_id, item in zip(archived, await self._bulk(ops), strict=True):
            if item["status"] not in _OK:
                log.warning("task %s is archived but its re-insert could not be undone: %s", doc_id, item)
            position, _ = created[doc_id]
            task = tasks[position]
            results[position] = AlreadyExists(f"task {task.id} already exists in queue {task.queue} (archived)")

    async def _archived_ids(self, doc_ids: list[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(doc_ids), MAX_PAGE):
            chunk = doc_ids[start : start + MAX_PAGE]
            resp = await self._client.search(
                index=self.names.archive_alias,
                query={"ids": {"values": chunk}},
                size=len(chunk),
                source=False,
                track_total_hits=False,
            )
            found.update(hit["_id"] for hit in resp.body["hits"]["hits"])
        return found

    async def get_task(self, queue: str, task_id: str) -> Task:
        doc_id = task_doc_id(queue, task_id)
        try:
            resp = await self._client.get(index=self.names.tasks, id=doc_id)
        except NotFoundError:
            pass
        else:
            return _task_from(resp.body)
        resp = await self._client.search(
            index=self.names.archive_alias,
            query={"ids": {"values": [doc_id]}},
            size=1,
            seq_no_primary_term=True,
            track_total_hits=False,
        )
        hits = resp.body["hits"]["hits"]
        if not hits:
            raise NotFound(f"no task {task_id} in queue {queue}")
        return _task_from(hits[0])

    async def update_task(self, task: Task) -> Task:
        doc_id = task_doc_id(task.queue, task.id)
        version = task.metadata.version
        try:
            resp = await self._client.index(
                index=self.names.tasks,
                id=doc_id,
                document=_source_of(task),
                if_seq_no=version.seq_num,
                if_primary_term=version.primary_term,
            )
        except ConflictError:
            self.refresher.wrote(claimable=task.claimable)
            # Also what a conditional write on a missing document answers.
            try:
                current = await self._client.get(index=self.names.tasks, id=doc_id)
            except NotFoundError:
                raise NotFound(f"no task {task.id} in queue {task.queue}") from None
            if current.body["_source"] != _source_of(task):
                raise VersionConflict(f"task {task.id} in queue {task.queue} changed since it was read") from None
            resp = current  # our own write, applied before a transport retry of the same request
        except BaseException:
            self.refresher.wrote(claimable=task.claimable)
            raise
        generation = self.refresher.wrote(claimable=task.claimable)
        if not task.claimable:
            self._took_out([doc_id], generation)
        return _versioned(task, resp.body["_seq_no"], resp.body["_primary_term"])

    async def update_tasks(self, tasks: Sequence[Task]) -> list[Task | VersionConflict]:
        if not tasks:
            return []
        ops: list[JsonDict] = []
        for task in tasks:
            ops.extend(self._conditional_index(task, task))
        results: list[Task | VersionConflict] = []
        items = await self._bulk(ops, claimable=any(t.claimable for t in tasks))
        mine = await self._own(items, ops)
        for task, item in zip(tasks, items, strict=True):
            item = mine.get(item["_id"], item)
            if item.get("found") or item["status"] in _OK:
                results.append(_versioned(task, item["_seq_no"], item["_primary_term"]))
            elif item["status"] == 409:
                # Changed or gone (the protocol's slot has no NotFound; a re-read by the caller will tell).
                results.append(VersionConflict(f"task {task.id} in queue {task.queue} changed since it was read"))
            else:
                raise _item_error("update", item)
        return results

    async def _own(self, items: list[JsonDict], ops: list[JsonDict]) -> dict[str, JsonDict]:
        """Of a bulk's 409s on the tasks index, the writes that were our own (see `faults.own_writes`)."""
        wanted = {i["_id"]: o for i, o in zip(items, ops[1::2], strict=True) if i["status"] == 409}
        return await own_writes(self._client, self.names.tasks, wanted)

    def _conditional_index(self, read: Task, new: Task) -> tuple[JsonDict, JsonDict]:
        """A bulk `index` of `new`, conditional on the version `read` was read at."""
        version = read.metadata.version
        action = {
            "index": {
                "_index": self.names.tasks,
                "_id": task_doc_id(new.queue, new.id),
                "if_seq_no": version.seq_num,
                "if_primary_term": version.primary_term,
            }
        }
        return action, _source_of(new)

    async def claim_tasks(
        self,
        queues: Sequence[str],
        now: datetime,
        limit: int,
        change: Callable[[Task], Task],
        target: TaskTarget = TaskTarget.PULL,
    ) -> list[Task]:
        if limit <= 0 or not queues:
            return []
        now_es = es_date(now)
        unique_queues = list(dict.fromkeys(queues))
        claimed: list[tuple[tuple[int, datetime], int, Task]] = []
        refused: set[str] = set()  # ids the change refused: not offered again in a later round
        for _ in range(CLAIM_ROUNDS):
            size = min((limit - len(claimed)) * self._settings.claim_overfetch, MAX_PAGE)
            query: JsonDict = {
                "bool": {
                    "filter": [
                        {"terms": {"queue": unique_queues}},
                        {"terms": {"state": _CLAIMABLE}},
                        {"range": {"run_at": {"lte": now_es}}},
                    ]
                }
            }
            # Tasks written before `target` existed have none: they are pull tasks.
            target_is_http: JsonDict = {"term": {"target": TaskTarget.HTTP.value}}
            must_not: list[JsonDict] = []
            if target is TaskTarget.HTTP:
                query["bool"]["filter"].append(target_is_http)
            else:
                must_not.append(target_is_http)
            stale = self._stale_for_claims()
            if len(stale) > MAX_STALE_EXCLUDED:
                await self.refresher.ensure_fresh()  # cheaper than a huge exclusion list
                stale = self._stale_for_claims()
            else:
                await self.refresher.ensure_fresh(for_claims=True)
            skip = refused.union(stale, self._unreadable_tasks())
            if skip:
                must_not.append({"ids": {"values": sorted(skip)}})
            if must_not:
                query["bool"]["must_not"] = must_not
            resp = await self._client.search(
                index=self.names.tasks,
                query=query,
                sort=[{"priority": "desc"}, {"run_at": "asc"}],
                size=size,
                seq_no_primary_term=True,
                track_total_hits=False,
            )
            hits: list[JsonDict] = resp.body["hits"]["hits"]
            lost = 0
            pos = 0
            while pos < len(hits) and len(claimed) < limit:
                # The next unused candidates, as many as are still wanted, go in one conditional bulk.
                batch: list[tuple[Task, Task]] = []
                while pos < len(hits) and len(batch) < limit - len(claimed):
                    hit = hits[pos]
                    pos += 1
                    if hit["_id"] in self._claiming:
                        lost += 1
                        continue
                    parsed = self._parse(_task_from, "tasks", hit)
                    if parsed is None:
                        refused.add(hit["_id"])
                        continue
                    task = parsed
                    try:
                        changed = change(task)
                    except TasquesError:
                        refused.add(hit["_id"])
                        continue
                    if (changed.queue, changed.id) != (task.queue, task.id):
                        raise ValueError(f"a claim change must not move task {task.queue}/{task.id}")
                    batch.append((task, changed))
                if not batch:
                    break
                ops: list[JsonDict] = []
                for task, changed in batch:
                    ops.extend(self._conditional_index(task, changed))
                doc_ids = [op["index"]["_id"] for op in ops[::2]]
                self._claiming.update(doc_ids)
                try:
                    items = await self._bulk(ops, claimable=False)
                    # A retried bulk meets its own claims as 409s: they are ours all the same.
                    mine = await self._own(items, ops)
                finally:
                    self._claiming.difference_update(doc_ids)
                for (task, changed), item in zip(batch, items, strict=True):
                    item = mine.get(item["_id"], item)
                    if item.get("found") or item["status"] in _OK:
                        stored = _versioned(changed, item["_seq_no"], item["_primary_term"])
                        claimed.append((claim_order_key(task), len(claimed), stored))
                    elif item["status"] == 409:
                        lost += 1  # another claim (or a stale search hit): someone else has it
                    else:
                        lost += 1
                        log.warning("claim of task %s failed, left as it was: %s", item["_id"], item.get("error"))
            if not hits and not claimed and await self.refresher.refresh_if_idle_for(EMPTY_CLAIM_REFRESH_GAP):
                # Nothing visible: another server may have created tasks since the last refresh. Look again,
                # refreshing at most every EMPTY_CLAIM_REFRESH_GAP rather than waiting for refresh_interval.
                continue
            if len(claimed) >= limit or not hits or (len(hits) < size and lost == 0):
                break
            if lost:
                # Races lost to other servers mean our view of the index is stale: refresh before looking again.
                await self.refresher.refresh_if_idle_for(0)
        claimed.sort(key=lambda c: (c[0], c[1]))
        return [task for _, _, task in claimed]

    async def timed_out_tasks(self, now: datetime, limit: int) -> list[Task]:
        if limit <= 0:
            return []
        now_es = es_date(now)
        await self.refresher.ensure_fresh()
        hits = await self._search_all(
            self.names.tasks,
            {
                "bool": {
                    "filter": [
                        {"term": {"state": TaskState.CLAIMED.value}},
                        {"range": {"last_claimed.times_out_at": {"lte": now_es}}},
                    ],
                    "must_not": [{"ids": {"values": sorted(self._unreadable_tasks())}}],
                }
            },
            [{"last_claimed.times_out_at": "asc"}, {"queue": "asc"}, {"id": "asc"}],
            limit=limit,
            seq_no_primary_term=True,
        )
        parsed = (self._parse(_task_from, "tasks", hit) for hit in hits)
        return [t for t in parsed if t is not None]

    async def find_claimed_by(self, worker_id: str, claimed_at: datetime) -> list[Task]:
        at = es_date(claimed_at)
        # Rare (only after a failed claim), and it must see every server's and every late write: refresh.
        await self._refresh_tasks()
        resp = await self._client.search(
            index=self.names.tasks,
            query={
                "bool": {
                    "filter": [
                        {"term": {"state": TaskState.CLAIMED.value}},
                        {"term": {"last_claimed.worker_id": worker_id}},
                        {"range": {"last_claimed.claimed_at": {"gte": at, "lte": at}}},
                    ]
                }
            },
            size=MAX_PAGE,
            seq_no_primary_term=True,
            track_total_hits=False,
        )
        parsed = (self._parse(_task_from, "tasks", hit) for hit in resp.body["hits"]["hits"])
        return [t for t in parsed if t is not None]

    async def ping(self, within: timedelta) -> None:
        # A count on the live index: answered only while the cluster has a master and the index's shards.
        try:
            await self._client.options(request_timeout=within.total_seconds()).count(index=self.names.tasks)
        except ApiError as e:  # e.g. the index is missing: not ready either
            raise StoreUnavailable(f"elasticsearch answered {e.meta.status} ({e.error})") from e

    async def list_tasks(self, flt: TaskFilter, limit: int, cursor: str | None) -> TaskPage:
        if limit <= 0:
            raise InvalidInput("limit must be positive", [FieldProblem(field="limit", problem="must be at least 1")])
        limit = min(limit, MAX_PAGE - 1)
        after = decode_cursor(cursor) if cursor is not None else None
        filters: list[JsonDict] = []
        if flt.queue is not None:
            filters.append({"term": {"queue": flt.queue}})
        if flt.states:
            filters.append({"terms": {"state": sorted(s.value for s in flt.states)}})
        if flt.kind is not None:
            filters.append({"term": {"kind": flt.kind}})
        if flt.recurring_task_id is not None:
            filters.append({"term": {"recurring_task_id": flt.recurring_task_id}})
        kwargs: dict[str, Any] = {}
        if after is not None:
            created_us, queue, task_id = after
            kwargs["search_after"] = [created_us * 1_000, queue, task_id]  # date_nanos sorts on nanoseconds
        await self.refresher.ensure_fresh()
        resp = await self._client.search(
            index=self.names.tasks,
            query={"bool": {"filter": filters}},
            sort=[{"metadata.created_at": "desc"}, {"queue": "desc"}, {"id": "desc"}],
            size=limit + 1,
            seq_no_primary_term=True,
            track_total_hits=False,
            **kwargs,
        )
        hits: list[JsonDict] = resp.body["hits"]["hits"]
        tasks = [_task_from(hit) for hit in hits[:limit]]
        next_cursor = None
        if len(hits) > limit:
            created_ns, queue, task_id = hits[limit - 1]["sort"]
            next_cursor = encode_cursor((int(created_ns) // 1_000, str(queue), str(task_id)))
        return TaskPage(tasks=tasks, next_cursor=next_cursor)

    async def queue_counts(self) -> list[QueueCounts]:
        """Every queue's counts: a composite aggregation paged by `after_key`, `page_size` queues at a time."""
        await self.refresher.ensure_fresh()
        out: list[QueueCounts] = []
        after: JsonDict | None = None
        while True:
            composite: JsonDict = {
                "size": self._settings.page_size,
                "sources": [{"queue": {"terms": {"field": "queue"}}}],
            }
            if after is not None:
                composite["after"] = after
            resp = await self._client.search(
                index=self.names.tasks,
                size=0,
                track_total_hits=False,
                aggs={
                    "queues": {
                        "composite": composite,
                        "aggs": {"states": {"terms": {"field": "state", "size": len(TaskState)}}},
                    }
                },
            )
            agg = resp.body["aggregations"]["queues"]
            for bucket in agg["buckets"]:
                counts = {TaskState(b["key"]): int(b["doc_count"]) for b in bucket["states"]["buckets"]}
                out.append(QueueCounts(queue=str(bucket["key"]["queue"]), counts=counts))
            after = agg.get("after_key")
            if len(agg["buckets"]) < self._settings.page_size or after is None:
                return out

    async def count_outstanding(self, recurring_task_id: str) -> int:
        await self.refresher.ensure_fresh()
        resp = await self._client.count(
            index=self.names.tasks,
            query={
                "bool": {
                    "filter": [{"term": {"recurring_task_id": recurring_task_id}}],
                    "must_not": [{"terms": {"state": _FINISHED}}],
                }
            },
        )
        return int(resp.body["count"])

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
                log.warning("task %s not archived; it stays live: %s", item["_id"], item.get("error"))
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
                log.warning("archived task %s not deleted from the live index: %s", item["_id"], item.get("error"))
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
            log.warning("task %s changed while being archived: it stays live", doc_id)
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

    # Recurring tasks: rare writes, each refreshed at once so every server's list_recurring sees it.

    async def insert_recurring(self, task: RecurringTask) -> RecurringTask:
        return await self._create_small(self.names.recurring, task.id, task, f"recurring task {task.id} already exists")

    async def get_recurring(self, task_id: str) -> RecurringTask:
        try:
            resp = await self._client.get(index=self.names.recurring, id=task_id)
        except NotFoundError:
            raise NotFound(f"no recurring task {task_id}") from None
        return _recurring_from(resp.body)

    async def update_recurring(self, task: RecurringTask) -> RecurringTask:
        return await self._replace_small(self.names.recurring, task.id, task, f"recurring task {task.id}")

    async def delete_recurring(self, task_id: str) -> RecurringTask:
        for _ in range(_DELETE_RETRIES):
            current = await self.get_recurring(task_id)
            version = current.metadata.version
            try:
                await self._client.delete(
                    index=self.names.recurring,
                    id=task_id,
                    if_seq_no=version.seq_num,
                    if_primary_term=version.primary_term,
                    refresh=True,
                )
            except ConflictError:
                continue  # changed (or deleted) since it was read: read it again
            except NotFoundError:
                raise NotFound(f"no recurring task {task_id}") from None
            return current
        raise VersionConflict(f"recurring task {task_id} kept changing; not deleted")

    async def list_recurring(self) -> list[RecurringTask]:
        hits = await self._search_all(
            self.names.recurring, {"match_all": {}}, [{"id": "asc"}], seq_no_primary_term=True
        )
        parsed = (self._parse(_recurring_from, "recurring", hit) for hit in hits)
        return [r for r in parsed if r is not None]

    # Queue settings: rare writes, each refreshed at once so every server's list_queue_settings sees it.

    async def insert_queue_settings(self, settings: QueueSettings) -> QueueSettings:
        return await self._create_small(
            self.names.queues, settings.queue, settings, f"queue {settings.queue} already has settings"
        )

    async def get_queue_settings(self, queue: str) -> QueueSettings:
        try:
            resp = await self._client.get(index=self.names.queues, id=queue)
        except NotFoundError:
            raise NotFound(f"no settings for queue {queue}") from None
        return QueueSettings.model_validate(_with_version(resp.body))

    async def update_queue_settings(self, settings: QueueSettings) -> QueueSettings:
        return await self._replace_small(
            self.names.queues, settings.queue, settings, f"settings of queue {settings.queue}"
        )

    async def _create_small(self, index: str, doc_id: str, record: _Versioned, taken: str) -> _Versioned:
        """Create a rarely written record, refreshed at once so every server lists it."""
        try:
            resp = await self._client.index(
                index=index, id=doc_id, document=_source_of(record), op_type="create", refresh=True
            )
        except ConflictError:
            raise AlreadyExists(taken) from None
        return _versioned(record, resp.body["_seq_no"], resp.body["_primary_term"])

    async def _replace_small(self, index: str, doc_id: str, record: _Versioned, what: str) -> _Versioned:
        """Conditional replace of a rarely written record, refreshed at once so every server lists it."""
        version = record.metadata.version
        try:
            resp = await self._client.index(
                index=index,
                id=doc_id,
                document=_source_of(record),
                if_seq_no=version.seq_num,
                if_primary_term=version.primary_term,
                refresh=True,
            )
        except ConflictError:
            if await self._client.exists(index=index, id=doc_id):
                raise VersionConflict(f"{what} changed since it was read") from None
            raise NotFound(f"no {what}") from None
        return _versioned(record, resp.body["_seq_no"], resp.body["_primary_term"])

    async def list_queue_settings(self) -> list[QueueSettings]:
        hits = await self._search_all(
            self.names.queues, {"match_all": {}}, [{"queue": "asc"}], seq_no_primary_term=True
        )
        parsed = (self._parse(_queue_settings_from, "queues", hit) for hit in hits)
        return [q for q in parsed if q is not None]

    # Attempt timeline: written with refresh=true, so a task's timeline shows its attempts at once.

    async def insert_attempt(self, attempt: Attempt) -> None:
        await self._client.index(
            index=self.names.timeline, id=attempt.key, document=attempt.model_dump(mode="json"), refresh=True
        )

    async def list_attempts(self, queue: str, task_id: str) -> list[Attempt]:
        hits = await self._search_all(
            self.names.timeline,
            {"bool": {"filter": [{"term": {"queue": queue}}, {"term": {"task_id": task_id}}]}},
            [{"run": "asc"}, {"attempt": "asc"}],  # unique within one task: the document id is queue/id/run/attempt
        )
        return [Attempt.model_validate(hit["_source"]) for hit in hits]

    async def delete_attempts(self, ended_before: datetime, limit: int) -> int:
        deleted = 0
        # A page at a time; deleted attempts are gone after the refresh, so each search starts again.
        while deleted < limit:
            size = min(self._settings.page_size, limit - deleted)
            resp = await self._client.search(
                index=self.names.timeline,
                query={"range": {"ended_at": {"lt": es_date(ended_before)}}},
                sort=[{"ended_at": "asc"}],
                size=size,
                source=False,
                track_total_hits=False,
            )
            hits = resp.body["hits"]["hits"]
            if not hits:
                break
            ops: list[JsonDict] = [{"delete": {"_index": self.names.timeline, "_id": hit["_id"]}} for hit in hits]
            items = await self._bulk(ops, live=False)
            await self._client.indices.refresh(index=self.names.timeline)
            page_deleted = sum(1 for item in items if item["status"] in _OK)
            deleted += page_deleted
            if page_deleted < size:
                break
        return deleted

    # Leader lock

    async def acquire_lock(self, name: str, holder: str, now: datetime, expires_at: datetime) -> bool:
        es_date(now)
        document = {"holder": holder, "expires_at": es_date(expires_at)}
        try:
            resp = await self._client.get(index=self.names.locks, id=name)
        except NotFoundError:
            try:
                await self._client.index(index=self.names.locks, id=name, document=document, op_type="create")
            except ConflictError:
                return False
            return True
        source = resp.body["_source"]
        if source["holder"] != holder and datetime.fromisoformat(source["expires_at"]) > now:
            return False
        try:
            await self._client.index(
                index=self.names.locks,
                id=name,
                document=document,
                if_seq_no=resp.body["_seq_no"],
                if_primary_term=resp.body["_primary_term"],
            )
        except ConflictError:
            return False
        return True

    async def release_lock(self, name: str, holder: str) -> None:
        try:
            resp = await self._client.get(index=self.names.locks, id=name)
        except NotFoundError:
            return
        if resp.body["_source"]["holder"] != holder:
            return
        # A conflict: renewed, taken over or released meanwhile, so not ours to delete any more.
        with contextlib.suppress(ConflictError, NotFoundError):
            await self._client.delete(
                index=self.names.locks,
                id=name,
                if_seq_no=resp.body["_seq_no"],
                if_primary_term=resp.body["_primary_term"],
            )


# Documents


def es_date(at: datetime) -> str:
    """A time as Elasticsearch reads it, in UTC with microseconds. Naive datetimes are refused."""
    if at.utcoffset() is None:
        raise ValueError(f"naive datetime {at!r}: the store needs time-zone-aware datetimes")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _source_of(record: Task | RecurringTask | QueueSettings) -> JsonDict:
    # The version is not stored: it is the document's _seq_no/_primary_term, rebuilt on every read.
    source = record.model_dump(mode="json", exclude=_NO_VERSION)
    if isinstance(record, Task):
        source["target"] = record.target.value  # derived, indexed for claims
    return source


_Versioned = TypeVar("_Versioned", Task, RecurringTask, QueueSettings)
_R = TypeVar("_R")


def _versioned(record: _Versioned, seq_no: int, primary_term: int) -> _Versioned:
    version = Version(seq_num=seq_no, primary_term=primary_term)
    return record.model_copy(update={"metadata": record.metadata.model_copy(update={"version": version})})


def _with_version(doc: JsonDict) -> JsonDict:
    """The `_source` of a get or search hit, with `metadata.version` rebuilt from the hit."""
    source: JsonDict = doc["_source"]
    source["metadata"]["version"] = {"seq_num": doc["_seq_no"], "primary_term": doc["_primary_term"]}
    return source


def _task_from(doc: JsonDict) -> Task:
    source = _with_version(doc)
    source.pop("archived_at", None)
    source.pop("target", None)
    return Task.model_validate(source)


def _recurring_from(doc: JsonDict) -> RecurringTask:
    return RecurringTask.model_validate(_with_version(doc))


def _queue_settings_from(doc: JsonDict) -> QueueSettings:
    return QueueSettings.model_validate(_with_version(doc))


def _item_error(action: str, item: JsonDict) -> ElasticsearchStoreError | StoreUnavailable:
    if item.get("status") in UNAVAILABLE_STATUSES:  # e.g. 429 es_rejected_execution_exception: overloaded
        return StoreUnavailable(f"elasticsearch refused the {action} of {item.get('_id')}: {item.get('status')}")
    return ElasticsearchStoreError(
        f"{action} of {item.get('_id')} failed with {item.get('status')}: {item.get('error')}"
    )

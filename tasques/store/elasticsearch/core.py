"""The core of the Elasticsearch store: its state, lifecycle and the helpers every part shares.

`StoreCore` holds the client, index names, archive lifecycle and coalesced refresher, and the per-process
memories (claims in flight, unrefreshed take-outs, unreadable and unarchivable documents). It opens and closes
the store and offers the shared helpers: `_bulk` (with the read-your-writes bookkeeping), `_search_all`,
`_parse`, `_conditional_index` and `_own`. The concerns built on it (tasks, claims, archiving, records) are
mixins in their own modules, combined into `ElasticsearchStore` in `store.py`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any, Self, TypeVar

from elasticsearch import ApiError, AsyncElasticsearch

from tasques.config import ES_MAX_PAGE, ElasticsearchConfig
from tasques.domain.batch import Batch
from tasques.domain.project import ApiToken, Project
from tasques.domain.queue import QueueSettings
from tasques.domain.recurring import RecurringTask
from tasques.domain.task import Task
from tasques.store.base import ClaimConflicts
from tasques.store.elasticsearch.archive import ArchiveLifecycle, error_type
from tasques.store.elasticsearch.documents import _OK, _recurring_from, _source_of, _task_from
from tasques.store.elasticsearch.faults import own_writes
from tasques.store.elasticsearch.mappings import (
    TASKS_INDEX_SORT,
    JsonDict,
    admission_mappings,
    admissions_template_body,
    batch_mappings,
    batches_template_body,
    dynamic_settings,
    lock_mappings,
    locks_template_body,
    project_mappings,
    projects_template_body,
    queue_settings_mappings,
    queues_template_body,
    recurring_mappings,
    recurring_template_body,
    small_index_settings,
    task_mappings,
    tasks_settings,
    tasks_template_body,
    timeline_mappings,
    timeline_template_body,
    token_mappings,
    tokens_template_body,
    worker_mappings,
    workers_template_body,
)
from tasques.store.elasticsearch.migrate import migrate_to_projects
from tasques.store.elasticsearch.names import IndexNames, task_doc_id
from tasques.store.elasticsearch.recent import RecentTasks
from tasques.store.elasticsearch.refresh import CoalescedRefresher
from tasques.store.sealing import Sealer
from tasques.store.unreadable import UnreadableRecords

log = logging.getLogger("tasques.store.elasticsearch")

# index.max_result_window: the largest page one search may return. Reads of every record page through with
# `search_after` (settings.page_size at a time); only claims and `list_tasks` pages are bounded by this.
MAX_PAGE = ES_MAX_PAGE
# Without ILM, archive_finished rolls over and prunes the archive at most this often (wall-clock seconds).
ARCHIVE_MAINTENANCE_EVERY = 60.0
# A read-modify-write whose conditional write keeps losing to other writers gives up after this many reads.
RMW_RETRIES = 5

_R = TypeVar("_R")
# An insert call waiting for its quota admission (quota.py): its `_id`s, its quota, where its answer goes.
Waiting = tuple[list[str], int, "asyncio.Future[None]"]


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


class StoreCore:
    """State, lifecycle and shared helpers of `ElasticsearchStore` (which adds the operations as mixins)."""

    def __init__(
        self,
        client: AsyncElasticsearch,
        settings: ElasticsearchConfig,
        *,
        owns_client: bool = False,
        maintain_archive_every: float | None = ARCHIVE_MAINTENANCE_EVERY,
        sealer: Sealer | None = None,
    ) -> None:
        """`maintain_archive_every`: seconds between the archive maintenance runs `archive_finished` makes
        without ILM; None leaves maintenance to explicit `maintain_archive` calls. `sealer`: encrypts the
        sensitive fields of what is written, and opens them on reads (see `tasques/store/sealed_records.py`)."""
        self._client = client
        self.sealer = sealer
        self._maintain_every = maintain_archive_every
        self._settings = settings
        self._owns_client = owns_client
        self.names = IndexNames(settings.index_prefix)
        self.archive = ArchiveLifecycle(client, self.names, settings)
        self.refresher = CoalescedRefresher(self._refresh_tasks)
        # The attempt timeline's own: one attempt per dispatch is a per-task write, so it never refreshes itself.
        self.timeline_refresher = CoalescedRefresher(self._refresh_timeline)
        # The worker registry's: sightings are bulked once a second per server and never refresh themselves.
        self.workers_refresher = CoalescedRefresher(self._refresh_workers)
        self._opened = False
        self._closed = False  # faults.CLOSED: set by close(), so later calls are refused
        self._next_maintenance = 0.0
        # _ids this instance's claims are writing right now: its other claims skip them rather than lose the race.
        self._claiming: set[str] = set()
        # _id -> write generation of tasks this instance took out of the claimable set (see _stale_for_claims).
        self._unrefreshed: OrderedDict[str, int] = OrderedDict()
        self.unreadable = UnreadableRecords(log)
        # Told of claim writes that lost a race to another server (metrics); see store.base.ClaimConflicts.
        self.on_claim_conflicts: ClaimConflicts | None = None
        # _ids of finished tasks the archive refused: later archive passes look past them.
        self._unarchivable: set[str] = set()
        # lock name -> (holder, _seq_no, _primary_term) of our last write of it: renewals need no read first.
        self._held_locks: dict[str, tuple[str, int, int]] = {}
        # The tasks this instance wrote last: where a read-modify-write starts (see recent.py).
        self.recent = RecentTasks()
        # project -> (seq_no, primary_term, entries) of our last write of its admissions (quota.py), and the
        # lock that makes this instance's admissions to one project wait for each other rather than race.
        self._admissions: dict[str, tuple[int | None, int | None, list[JsonDict]]] = {}
        self._quota_locks: dict[str, asyncio.Lock] = {}
        self._quota_waiting: dict[str, list[Waiting]] = {}  # project -> insert calls waiting for admission

    @classmethod
    def from_config(
        cls,
        settings: ElasticsearchConfig,
        *,
        maintain_archive_every: float | None = ARCHIVE_MAINTENANCE_EVERY,
        sealer: Sealer | None = None,
    ) -> Self:
        """A store with its own client, closed by `close()`."""
        return cls(
            build_client(settings),
            settings,
            owns_client=True,
            maintain_archive_every=maintain_archive_every,
            sealer=sealer,
        )

    # Lifecycle

    async def open(self) -> None:
        self._closed = False
        if self._opened:
            return
        n, s = self.names, self._settings
        small = small_index_settings(s)
        # (template name, template body, index, mappings, settings) of every index but the archive's.
        indices: list[tuple[str, JsonDict, str, JsonDict, JsonDict]] = [
            ("tasks", tasks_template_body(n, s), n.tasks, task_mappings(), tasks_settings(s)),
            ("recurring", recurring_template_body(n, s), n.recurring, recurring_mappings(), small),
            ("locks", locks_template_body(n, s), n.locks, lock_mappings(), small),
            ("queues", queues_template_body(n, s), n.queues, queue_settings_mappings(), small),
            ("timeline", timeline_template_body(n, s), n.timeline, timeline_mappings(), small),
            ("projects", projects_template_body(n, s), n.projects, project_mappings(), small),
            ("tokens", tokens_template_body(n, s), n.tokens, token_mappings(), small),
            ("admissions", admissions_template_body(n, s), n.admissions, admission_mappings(), small),
            ("workers", workers_template_body(n, s), n.workers, worker_mappings(), small),
            ("batches", batches_template_body(n, s), n.batches, batch_mappings(), small),
        ]
        for what, body, *_ in indices:
            await self._client.indices.put_index_template(name=n.template(what), body=body)
        await self.archive.setup()
        for _, _, index, mappings, settings in indices:
            if not await self._ensure_index(index, mappings, settings) and index == n.tasks:
                await self._warn_if_unsorted()
        # Documents of a Tasques before projects (TEMPLATE_VERSION < 5) move into the default project.
        await migrate_to_projects(self._client, n, self._bulk_raw, self._settings.page_size)
        self._opened = True

    async def _ensure_index(self, index: str, mappings: JsonDict, settings: JsonDict) -> bool:
        """Create `index` if missing; returns whether it was created here."""
        try:
            await self._client.indices.create(index=index)  # settings and mappings come from the template
        except ApiError as e:
            # Already there, maybe created a moment ago by another server starting at once: bring its mapping
            # (new fields only; a changed type fails loudly) and dynamic settings up to date.
            if error_type(e) != "resource_already_exists_exception":
                raise
            await self._client.indices.put_mapping(index=index, body=mappings)
            await self._client.indices.put_settings(index=index, settings=dynamic_settings(settings))
            return False
        return True

    async def _warn_if_unsorted(self) -> None:
        """A tasks index created before index sorting (or by hand) cannot be sorted now: it works, but each
        claim search visits every claimable task. Say so once, at open."""
        index = self.names.tasks
        resp = await self._client.indices.get_settings(index=index, name="index.sort.*", flat_settings=True)
        got = {k: v for body in resp.body.values() for k, v in body["settings"].items()}
        wanted = {f"index.{k}": v for k, v in TASKS_INDEX_SORT.items()}
        if got != wanted:
            log.warning(
                "the tasks index %s is not sorted in claim order (%s; wanted %s): claims still work, but cost "
                "more the longer the queue; see the Elasticsearch store README, 'Index sorting'",
                index,
                got or "no index sort",
                wanted,
            )

    async def close(self) -> None:
        self._closed = True
        await self.refresher.close()
        await self.timeline_refresher.close()
        await self.workers_refresher.close()
        self._opened = False
        if self._owns_client:
            await self._client.close()

    async def _refresh_tasks(self) -> None:
        await self._client.indices.refresh(index=self.names.tasks)

    async def _refresh_timeline(self) -> None:
        await self._client.indices.refresh(index=self.names.timeline)

    async def _refresh_workers(self) -> None:
        await self._client.indices.refresh(index=self.names.workers)

    async def _bulk_raw(self, operations: list[JsonDict]) -> list[JsonDict]:
        """One `_bulk` with no bookkeeping; returns its items (each action's result)."""
        resp = await self._client.bulk(operations=operations)
        return [next(iter(item.values())) for item in resp.body["items"]]

    async def _bulk(self, operations: list[JsonDict], *, live: bool = True, claimable: bool = True) -> list[JsonDict]:
        """One `_bulk`; returns its items. Writes to the live index count as writes for read-your-writes;
        `claimable=False` says none of them can make a task claimable (claims, done, deletes)."""
        generation = 0
        try:
            items = await self._bulk_raw(operations)
        finally:
            if live:
                generation = self.refresher.wrote(claimable=claimable)
        if live:
            written = (item["_id"] for item in items if item["status"] in _OK)
            if claimable:
                self._put_back(written)
            else:
                self._took_out(written, generation)
        return items

    def _put_back(self, doc_ids: Iterable[str]) -> None:
        """Tasks written claimable again (unclaimed, retried): claims must no longer skip them by id."""
        for doc_id in doc_ids:
            self._unrefreshed.pop(doc_id, None)

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

    async def _archived_hits(self, doc_ids: list[str], *, source: bool = False) -> dict[str, JsonDict]:
        """The archived documents of these `_id`s (with their concrete `_index` and version; `_source` only when
        `source`), by `_id`: an ids search of the archive alias, MAX_PAGE at a time."""
        found: dict[str, JsonDict] = {}
        for start in range(0, len(doc_ids), MAX_PAGE):
            chunk = doc_ids[start : start + MAX_PAGE]
            resp = await self._client.search(
                index=self.names.archive_alias,
                query={"ids": {"values": chunk}},
                size=len(chunk),
                source=source,
                seq_no_primary_term=True,
                track_total_hits=False,
            )
            for hit in resp.body["hits"]["hits"]:
                found.setdefault(hit["_id"], hit)
        return found

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
            self.unreadable.note(f"{what}/{doc.get('_id')}", e)
            return None

    def _unreadable_tasks(self) -> set[str]:
        return self.unreadable.task_keys()

    # Documents, sealed and opened with this store's keys

    def task_of(self, doc: JsonDict) -> Task:
        return _task_from(doc, self.sealer)

    def recurring_of(self, doc: JsonDict) -> RecurringTask:
        return _recurring_from(doc, self.sealer)

    def source_of(self, record: Task | RecurringTask | QueueSettings | Project | ApiToken | Batch) -> JsonDict:
        return _source_of(record, self.sealer)

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
                "_id": task_doc_id(new.project, new.queue, new.id),
                "if_seq_no": version.seq_num,
                "if_primary_term": version.primary_term,
            }
        }
        return action, self.source_of(new)

"""Claims of the Elasticsearch store, and the reads that find claimed tasks again.

`claim_tasks` runs rounds of one sorted search plus conditional `_bulk` writes that skip lost races (at most
`CLAIM_ROUNDS`); `_claim_query` builds a round's search, `_claim_hits` walks its candidates and
`_write_claims` sends one batch. `timed_out_tasks` and `find_claimed_by` search claimed tasks.
See README.md, "Claims" and "Read-your-writes".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from tasques.domain.errors import TasquesError
from tasques.domain.http_target import TaskTarget
from tasques.domain.limits import DEFAULT_PROJECT
from tasques.domain.task import Task, TaskState, claim_order_key
from tasques.log_fields import about
from tasques.store.elasticsearch.core import MAX_PAGE, StoreCore, log
from tasques.store.elasticsearch.documents import _CLAIMABLE, _OK, _versioned, es_date
from tasques.store.elasticsearch.mappings import CLAIM_SORT, JsonDict

# A claim re-searches at most this many times when it lost races and is still short of its limit.
CLAIM_ROUNDS = 5
# A claim that sees nothing refreshes to find other servers' new tasks at most once per refresh interval (and
# never more often than this, in seconds): idle waiters poll `claimable_queues` instead, without refreshing.
EMPTY_CLAIM_REFRESH_GAP = 0.1
# Past this many of our own unrefreshed claims/dones, a claim refreshes instead of excluding them by id.
MAX_STALE_EXCLUDED = 2_000

# (claim order key, position claimed, the stored task): sorted into claim order at the end.
_Claimed = list[tuple[tuple[int, datetime], int, Task]]


class ClaimsMixin(StoreCore):
    """Claims, timed-out tasks, and the tasks one claim call took."""

    async def claim_tasks(
        self,
        queues: Sequence[str],
        now: datetime,
        limit: int,
        change: Callable[[Task], Task],
        target: TaskTarget = TaskTarget.PULL,
        *,
        project: str | None = DEFAULT_PROJECT,
    ) -> list[Task]:
        if limit <= 0 or not queues:
            return []
        now_es = es_date(now)
        unique_queues = list(dict.fromkeys(queues))
        claimed: _Claimed = []
        refused: set[str] = set()  # ids the change refused: not offered again in a later round
        for _ in range(CLAIM_ROUNDS):
            size = min((limit - len(claimed)) * self._settings.claim_overfetch, MAX_PAGE)
            query = await self._claim_query(project, unique_queues, now_es, target, refused)
            resp = await self._client.search(
                index=self.names.tasks,
                query=query,
                sort=CLAIM_SORT,  # the index sort: each segment's search stops after its first `size` hits
                size=size,
                seq_no_primary_term=True,
                track_total_hits=False,
            )
            hits: list[JsonDict] = resp.body["hits"]["hits"]
            lost = await self._claim_hits(hits, limit, change, claimed, refused)
            if not hits and not claimed and await self.refresher.refresh_if_idle_for(self._empty_claim_refresh_gap):
                # Nothing visible: another server may have created tasks since the last refresh. Look again.
                continue
            if len(claimed) >= limit or not hits or (len(hits) < size and lost == 0):
                break
            if lost:
                # Races lost to other servers mean our view of the index is stale: refresh before looking again.
                await self.refresher.refresh_if_idle_for(0)
        claimed.sort(key=lambda c: (c[0], c[1]))
        return [task for _, _, task in claimed]

    @property
    def _empty_claim_refresh_gap(self) -> float:
        return max(EMPTY_CLAIM_REFRESH_GAP, self._settings.refresh_interval.total_seconds())

    async def _claim_query(
        self, project: str | None, queues: list[str], now_es: str, target: TaskTarget, refused: set[str]
    ) -> JsonDict:
        """One round's search for claimable tasks (of `project`, or of every project when None); waits for the
        refresh the round needs first."""
        query: JsonDict = {
            "bool": {
                "filter": [
                    {"terms": {"queue": queues}},
                    {"terms": {"state": _CLAIMABLE}},
                    {"range": {"run_at": {"lte": now_es}}},
                ]
            }
        }
        if project is not None:
            query["bool"]["filter"].append({"term": {"project": project}})
        # Tasks written before `target` existed have none: they are pull tasks.
        target_is_http: JsonDict = {"term": {"target": TaskTarget.HTTP.value}}
        must_not: list[JsonDict] = []
        if target is TaskTarget.HTTP:
            query["bool"]["filter"].append(target_is_http)
        else:
            must_not.append(target_is_http)
        if len(self._stale_for_claims()) > MAX_STALE_EXCLUDED:
            await self.refresher.ensure_fresh()  # cheaper than a huge exclusion list
        else:
            await self.refresher.ensure_fresh(for_claims=True)
        stale = self._stale_for_claims()  # after the refresh: what it covered is visible, no longer skipped
        skip = refused.union(stale, self._unreadable_tasks())
        if skip:
            must_not.append({"ids": {"values": sorted(skip)}})
        if must_not:
            query["bool"]["must_not"] = must_not
        return query

    async def _claim_hits(
        self,
        hits: list[JsonDict],
        limit: int,
        change: Callable[[Task], Task],
        claimed: _Claimed,
        refused: set[str],
    ) -> int:
        """Claim from one round's candidates, in order, until `claimed` holds `limit`; returns how many
        candidates were lost (to our other claims in flight, or in races). Refused ids go to `refused`."""
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
                parsed = self._parse(self.task_of, "tasks", hit)
                if parsed is None:
                    refused.add(hit["_id"])
                    continue
                task = parsed
                try:
                    changed = change(task)
                except TasquesError:
                    refused.add(hit["_id"])
                    continue
                if (changed.project, changed.queue, changed.id) != (task.project, task.queue, task.id):
                    raise ValueError(f"a claim change must not move task {hit['_id']}")
                batch.append((task, changed))
            if not batch:
                break
            lost += await self._write_claims(batch, claimed)
        return lost

    async def _write_claims(self, batch: list[tuple[Task, Task]], claimed: _Claimed) -> int:
        """One conditional bulk of (read, changed) pairs; the claimed go to `claimed`. Returns how many were lost."""
        lost = 0
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
        raced: dict[str, int] = {}
        for (task, changed), item in zip(batch, items, strict=True):
            item = mine.get(item["_id"], item)
            if item.get("found") or item["status"] in _OK:
                stored = _versioned(changed, item["_seq_no"], item["_primary_term"])
                self.recent.wrote(item["_id"], stored)
                claimed.append((claim_order_key(task), len(claimed), stored))
            elif item["status"] == 409:
                lost += 1  # another claim (or a stale search hit): someone else has it
                raced[task.queue] = raced.get(task.queue, 0) + 1
            else:
                lost += 1
                log.warning("claim of task %s failed, left as it was: %s", item["_id"], item.get("error"),
                            extra=about(task_id=task.id, queue=task.queue))  # fmt: skip
        if raced and self.on_claim_conflicts is not None:
            for queue, count in raced.items():
                self.on_claim_conflicts(queue, count)
        return lost

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
            [{"last_claimed.times_out_at": "asc"}, {"project": "asc"}, {"queue": "asc"}, {"id": "asc"}],
            limit=limit,
            seq_no_primary_term=True,
        )
        parsed = (self._parse(self.task_of, "tasks", hit) for hit in hits)
        return [t for t in parsed if t is not None]

    async def find_claimed_by(
        self, worker_id: str, claimed_at: datetime, *, project: str = DEFAULT_PROJECT
    ) -> list[Task]:
        at = es_date(claimed_at)
        # Rare (only after a failed claim), and it must see every server's and every late write: refresh.
        await self._refresh_tasks()
        resp = await self._client.search(
            index=self.names.tasks,
            query={
                "bool": {
                    "filter": [
                        {"term": {"project": project}},
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
        parsed = (self._parse(self.task_of, "tasks", hit) for hit in resp.body["hits"]["hits"])
        return [t for t in parsed if t is not None]

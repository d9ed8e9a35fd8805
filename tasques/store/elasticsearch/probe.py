"""The idle probe of the Elasticsearch store: which (project, queue)s hold claimable tasks, in one search.

Blocked claims and the dispatcher of one server ask this once per tick instead of claiming per queue, so an
idle server sends one request per tick. The search is `size: 0` with a composite aggregation by (queue,
project, queue, target), filtered like a claim search (claimable state, `run_at <= now`, our own unrefreshed take-outs and
unreadable tasks excluded), so it visits only claimable tasks of the probed queues. See README.md, "Claims".
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from tasques.domain.http_target import TaskTarget
from tasques.store.base import QueueProbe
from tasques.store.elasticsearch.claims import MAX_STALE_EXCLUDED
from tasques.store.elasticsearch.core import StoreCore
from tasques.store.elasticsearch.documents import _CLAIMABLE, es_date
from tasques.store.elasticsearch.mappings import JsonDict


class ProbeMixin(StoreCore):
    """`claimable_queues`."""

    async def claimable_queues(self, now: datetime, probes: Sequence[QueueProbe]) -> set[tuple[str, str, TaskTarget]]:
        clauses = [c for c in (_probe_clause(p) for p in probes) if c is not None]
        if not clauses:
            return set()
        query: JsonDict = {
            "bool": {
                "filter": [{"terms": {"state": _CLAIMABLE}}, {"range": {"run_at": {"lte": es_date(now)}}}],
                "should": clauses,
                "minimum_should_match": 1,
            }
        }
        skip = await self._probe_skip()
        if skip:
            query["bool"]["must_not"] = [{"ids": {"values": sorted(skip)}}]
        found: set[tuple[str, str, TaskTarget]] = set()
        after: JsonDict | None = None
        while True:
            composite: JsonDict = {
                "size": self._settings.page_size,  # more queues with work than this cost another page
                "sources": [
                    {"project": {"terms": {"field": "project"}}},
                    {"queue": {"terms": {"field": "queue"}}},
                    # Tasks written before `target` existed have none: they are pull tasks.
                    {"target": {"terms": {"field": "target", "missing_bucket": True}}},
                ],
            }
            if after is not None:
                composite["after"] = after
            resp = await self._client.search(
                index=self.names.tasks,
                query=query,
                size=0,
                aggs={"found": {"composite": composite}},
                track_total_hits=False,
            )
            result: JsonDict = resp.body["aggregations"]["found"]
            buckets: list[JsonDict] = result["buckets"]
            for bucket in buckets:
                key = bucket["key"]
                found.add((key["project"], key["queue"], TaskTarget(key["target"] or TaskTarget.PULL.value)))
            after = result.get("after_key")
            if len(buckets) < self._settings.page_size or after is None:
                return found

    async def _probe_skip(self) -> set[str]:
        """What a claim search would exclude (and the refresh it would wait for first)."""
        if len(self._stale_for_claims()) > MAX_STALE_EXCLUDED:
            await self.refresher.ensure_fresh()
        else:
            await self.refresher.ensure_fresh(for_claims=True)
        return self._unreadable_tasks().union(self._stale_for_claims())


def _probe_clause(probe: QueueProbe) -> JsonDict | None:
    """One probe as a query clause; None if it can match nothing."""
    target_is_http: JsonDict = {"term": {"target": TaskTarget.HTTP.value}}
    filters: list[JsonDict] = []
    must_not: list[JsonDict] = []
    if probe.target is TaskTarget.HTTP:
        filters.append(target_is_http)
    else:
        must_not.append(target_is_http)
    if probe.project is not None:
        filters.append({"term": {"project": probe.project}})
    if probe.queues is not None:
        if probe.project is None:
            raise ValueError("a probe of every project names no queues")
        queues = sorted(probe.queues - {q for p, q in probe.excluding if p == probe.project})
        if not queues:
            return None
        filters.append({"terms": {"queue": queues}})
    else:
        excluded: dict[str, list[str]] = {}  # per project, so the clause count grows with projects, not queues
        for project, queue in sorted(probe.excluding):
            if probe.project in (None, project):
                excluded.setdefault(project, []).append(queue)
        for project, queues in excluded.items():
            must_not.append({"bool": {"filter": [{"term": {"project": project}}, {"terms": {"queue": queues}}]}})
    clause: JsonDict = {"bool": {"filter": filters}}
    if must_not:
        clause["bool"]["must_not"] = must_not
    return clause

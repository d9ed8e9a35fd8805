"""The quota of outstanding tasks, holding across servers: admissions serialized by one conditional write.

A search count alone cannot enforce a quota: another server's inserts stay invisible to searches until the
next refresh, so two servers could each see room for the same last places. Every quota-checked insert is
therefore first *admitted*: one document per project in `{prefix}-admissions` (`_id` = project) holds the
recent admissions, `[{at, ids}]` (the `_id`s of the tasks each insert was about to create), and an admission
is a conditional write of that document (`if_seq_no`), so admissions to one project are serialized: each is
decided knowing every admission before it. The check, after a refresh covering this server's own writes:

    held = outstanding tasks not among the recent ids (a search count)
         + recent ids that are outstanding (the same search)
         + recent ids the search does not find yet (assumed outstanding)
    refuse (QuotaExceeded, nothing written) if held + len(tasks) > quota

"Recent" is the window W = max(2 x refresh_interval, 2 s) + 1 s, by the admitting server's clock: an insert
admitted longer ago has been written and refreshed (while its bulk took less than W - refresh_interval -
clock skew), so the search count sees it. A recent id counts once however many entries name it, and by its
current state once visible, so finishing a just-admitted task frees its place at once. A lost conditional
write reads the document again and decides again, at most `RMW_RETRIES` times (then `StoreUnavailable`: try
again later); within one server, the calls waiting for an admission to one project are decided together,
in one write, so the other server's faster turns cannot starve this one's retries.

Limits: it may refuse early (never admit past the quota) for up to W after an insert whose slots were refused
(a duplicate of an archived id) or whose bulk failed. Tasks inserted *without* a quota are not admitted: they
count once a refresh shows them. An insert whose request outlives W (a stalled cluster) can be under-counted.
Cost per quota-checked insert: the refresh (coalesced), a realtime GET (skipped while this server wrote the
document last), one `size: 0` search, one conditional write; the document and the search's ids grow with the
tasks one project admits per W.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from elasticsearch import ConflictError, NotFoundError

from tasques.domain.errors import QuotaExceeded, StoreUnavailable
from tasques.domain.task import Task
from tasques.store.elasticsearch.core import RMW_RETRIES, StoreCore, Waiting
from tasques.store.elasticsearch.documents import _FINISHED, es_date
from tasques.store.elasticsearch.mappings import JsonDict

# The window's floor and the clock-skew margin added to it.
MIN_WINDOW = timedelta(seconds=2)
SKEW_MARGIN = timedelta(seconds=1)


def admission_window(refresh_interval: timedelta) -> timedelta:
    return max(2 * refresh_interval, MIN_WINDOW) + SKEW_MARGIN


class QuotaMixin(StoreCore):
    """Admission of quota-checked inserts."""

    async def _admit(self, tasks: Sequence[Task], doc_ids: list[str], quota: int) -> None:
        """Record the admission of `tasks` (`doc_ids` their `_id`s), or raise `QuotaExceeded`."""
        projects = {t.project for t in tasks}
        if len(projects) != 1:
            raise ValueError("a quota-checked insert takes the tasks of one project")
        (project,) = projects
        if len(tasks) > quota:
            raise QuotaExceeded(f"project {project}: {len(tasks)} tasks exceed its quota of {quota}")
        await self.refresher.ensure_fresh()  # this server's earlier writes (finishes too) are counted exactly
        answer: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiting = self._quota_waiting.setdefault(project, [])
        waiting.append((doc_ids, quota, answer))
        # Calls that queue up while an admission is in flight are decided together, in one write: this server
        # then takes one turn per round trip, so another server's turns cannot starve it of its retries.
        async with self._quota_locks.setdefault(project, asyncio.Lock()):
            if not answer.done():
                batch = list(waiting)
                waiting.clear()
                try:
                    await self._admit_batch(project, batch)
                except BaseException as e:
                    # The others waiting in this batch hear of it too (as an outage, whatever stopped it).
                    failed = e if isinstance(e, Exception) else StoreUnavailable("the quota admission was interrupted")
                    for _, _, other in batch:
                        if other is not answer and not other.done():
                            other.set_exception(failed)
                    raise
        await answer

    async def _admit_batch(self, project: str, batch: list[Waiting]) -> None:
        for _ in range(RMW_RETRIES):
            now = datetime.now(UTC)
            read = self._admissions.get(project) or await self._read_admissions(project)
            window = admission_window(self._settings.refresh_interval)
            recent = [e for e in read[2] if datetime.fromisoformat(e["at"]) > now - window]
            held = await self._held(project, {i for e in recent for i in e["ids"]})
            admitted: list[str] = []
            refused: dict[int, QuotaExceeded] = {}
            for n, (doc_ids, quota, _) in enumerate(batch):
                if held + len(doc_ids) > quota:
                    refused[n] = QuotaExceeded(
                        f"project {project} holds {held} outstanding tasks of its quota of {quota}: "
                        f"{len(doc_ids)} more would exceed it"
                    )
                else:
                    held += len(doc_ids)
                    admitted.extend(doc_ids)
            entries = [*recent, {"at": es_date(now), "ids": admitted}] if admitted else None
            if entries is None or await self._write_admissions(project, read, entries):
                for n, (_, _, answer) in enumerate(batch):
                    if n in refused:
                        answer.set_exception(refused[n])
                    else:
                        answer.set_result(None)
                return
        raise StoreUnavailable(f"the quota admissions of project {project} kept changing; try again")

    async def _read_admissions(self, project: str) -> tuple[int | None, int | None, list[JsonDict]]:
        """(seq_no, primary_term, entries) of the project's document; Nones when it has none yet."""
        try:
            resp = await self._client.get(index=self.names.admissions, id=project)
        except NotFoundError:
            return None, None, []
        return resp.body["_seq_no"], resp.body["_primary_term"], list(resp.body["_source"]["admissions"])

    async def _write_admissions(
        self, project: str, read: tuple[int | None, int | None, list[JsonDict]], entries: list[JsonDict]
    ) -> bool:
        """Write the entries conditionally on the version read; False if another server got in first."""
        seq_no, primary_term, _ = read
        document = {"project": project, "admissions": entries}
        condition: JsonDict = (
            {"op_type": "create"} if seq_no is None else {"if_seq_no": seq_no, "if_primary_term": primary_term}
        )
        try:
            resp = await self._client.index(index=self.names.admissions, id=project, document=document, **condition)
        except ConflictError:
            self._admissions.pop(project, None)  # read it again
            return False
        except BaseException:
            self._admissions.pop(project, None)  # the write may or may not have been applied
            raise
        self._admissions[project] = (resp.body["_seq_no"], resp.body["_primary_term"], entries)
        return True

    async def _held(self, project: str, recent: set[str]) -> int:
        """The project's outstanding tasks, counting recently admitted ones not yet visible as outstanding."""
        ids: JsonDict = {"ids": {"values": sorted(recent)}}
        finished: JsonDict = {"terms": {"state": _FINISHED}}
        resp = await self._client.search(
            index=self.names.tasks,
            query={"term": {"project": project}},
            size=0,
            track_total_hits=False,
            aggs={
                "older": {"filter": {"bool": {"must_not": [ids, finished]}}},
                "recent": {
                    "filter": ids,
                    "aggs": {"outstanding": {"filter": {"bool": {"must_not": [finished]}}}},
                },
            },
        )
        aggs = resp.body["aggregations"]
        visible = int(aggs["recent"]["doc_count"])
        return int(aggs["older"]["doc_count"]) + int(aggs["recent"]["outstanding"]["doc_count"]) + len(recent) - visible

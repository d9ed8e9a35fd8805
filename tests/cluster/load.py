"""Work flowing through the servers during a node failure, and the records that judge it afterwards.

- `Producer` enqueues batches of fresh ids until stopped, retrying a batch the API refused with 503 (a
  retried batch may meet its own earlier, applied write: 409 for those items counts as enqueued).
- `Ledger` is what the SDK workers' handler writes: (task, claim id, start, end) per run, so two live
  claims of one task show up as overlapping runs under different claim ids.
- `Prober` asks each server for one task, back to back, and keeps every answer's status, message and
  latency (a connection error or a client-side timeout is kept too, as status 0).
- `LockWatch` reads the leader lock document from the cluster itself, every 100 ms.
All of them record; the test decides.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp
from elasticsearch import AsyncElasticsearch

from tasques.leader.election import LOCK_NAME
from tasques.worker import TaskContext
from tasques.worker.client import JsonDict


@dataclass
class Answer:
    at: float  # monotonic, when the request was sent
    status: int  # 0: no HTTP answer (connection error or our own client timeout)
    message: str
    latency: float


def api_error(status: int, body: Any) -> str:
    return str(body.get("message", "")) if isinstance(body, dict) else str(body)[:200]


# The offered load: 20 tasks/s (a bulk of `batch` every `every` seconds), each held for HANDLER_SECONDS. Flat out
# (a bulk every 50 ms, 10 ms handlers) the file took ~1.8 of the machine's two cores for its whole ~8 minutes and
# slowed every other test of `make test`; the faults need claims and dones in flight, not the top rate.
HANDLER_SECONDS = 1.0


@dataclass
class Ledger:
    runs: list[tuple[str, str, float, float]] = field(default_factory=list)  # task, claim id, start, end

    async def work(self, ctx: TaskContext) -> JsonDict:
        start = time.monotonic()
        # A second per task: at the producer's 20 tasks/s about 20 claims are always held when a fault strikes.
        await asyncio.sleep(HANDLER_SECONDS)
        claim = ctx.task.last_claimed.claim_id if ctx.task.last_claimed else None
        self.runs.append((ctx.task.id, claim or "?", start, time.monotonic()))
        return {"ok": True}

    def overlapping(self) -> list[str]:
        """Tasks two different claims ran at the same time."""
        by_task: dict[str, list[tuple[float, float, str]]] = {}
        for task, claim, start, end in self.runs:
            by_task.setdefault(task, []).append((start, end, claim))
        bad = []
        for task, spans in by_task.items():
            spans.sort()
            if any(b[0] < a[1] and a[2] != b[2] for a, b in itertools.pairwise(spans)):
                bad.append(task)
        return bad

    def ran(self) -> set[str]:
        return {task for task, *_ in self.runs}

    def run_twice(self) -> int:
        seen: dict[str, int] = {}
        for task, *_ in self.runs:
            seen[task] = seen.get(task, 0) + 1
        return sum(1 for n in seen.values() if n > 1)

    def rate(self, since: float, until: float) -> float:
        """Runs ended per second in [since, until)."""
        return sum(1 for *_, end in self.runs if since <= end < until) / max(until - since, 1e-9)


@dataclass
class Producer:
    servers: Sequence[str]
    queue: str
    ledger: Ledger
    batch: int = 20
    every: float = 1.0  # seconds between bulks
    backlog: int = 400  # enqueue only while fewer than this many enqueued tasks have not run yet
    enqueued: set[str] = field(default_factory=set)
    refused: list[Answer] = field(default_factory=list)  # every non-200 answer (or none) to a bulk
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    def stop(self) -> None:
        self._stop.set()

    async def run(self, session: aiohttp.ClientSession) -> None:
        for n in itertools.count():
            if self._stop.is_set():
                return
            if len(self.enqueued) - len(self.ledger.ran()) >= self.backlog:
                await asyncio.sleep(self.every)
                continue
            ids = [f"{self.queue}-{n}-{i}" for i in range(self.batch)]
            body = {"tasks": [{"queue": self.queue, "kind": "work", "id": i} for i in ids]}
            for attempt in itertools.count():
                url = self.servers[(n + attempt) % len(self.servers)]
                started = time.monotonic()
                try:
                    async with session.post(f"{url}/tasques/bulk", json=body) as resp:
                        answer = await resp.json(content_type=None)
                        status = resp.status
                except (aiohttp.ClientError, TimeoutError) as e:
                    self.refused.append(Answer(started, 0, repr(e), time.monotonic() - started))
                    await asyncio.sleep(0.2)
                    continue
                if status == 200:
                    statuses = [item["status"] for item in answer["results"]]
                    assert set(statuses) <= {201, 409}, answer
                    self.enqueued.update(ids)
                    break
                self.refused.append(Answer(started, status, api_error(status, answer), time.monotonic() - started))
                await asyncio.sleep(0.2)
            await asyncio.sleep(self.every)


@dataclass
class Prober:
    servers: Sequence[str]
    path: str
    limit: float  # client-side timeout: an answer slower than this counts as none
    answers: list[Answer] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    def stop(self) -> None:
        self._stop.set()

    async def run(self, session: aiohttp.ClientSession) -> None:
        await asyncio.gather(*(self._probe(session, s) for s in self.servers))

    async def _probe(self, session: aiohttp.ClientSession, server: str) -> None:
        timeout = aiohttp.ClientTimeout(total=self.limit)
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                async with session.get(f"{server}{self.path}", timeout=timeout) as resp:
                    body = await resp.json(content_type=None)
                    answer = Answer(started, resp.status, api_error(resp.status, body), time.monotonic() - started)
            except (aiohttp.ClientError, TimeoutError) as e:
                answer = Answer(started, 0, repr(e), time.monotonic() - started)
            self.answers.append(answer)
            await asyncio.sleep(0.05)


@dataclass
class LockSample:
    at: float  # wall clock, as the lock's expiry is
    holder: str
    expires: float


@dataclass
class LockWatch:
    urls: Sequence[str]
    index: str
    samples: list[LockSample] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        es = AsyncElasticsearch(list(self.urls), request_timeout=1, max_retries=2, retry_on_timeout=True)
        try:
            while not self._stop.is_set():
                try:
                    resp = await es.options(ignore_status=404).get(index=self.index, id=LOCK_NAME)
                    if resp.get("found"):
                        src = resp["_source"]
                        expires = datetime.fromisoformat(src["expires_at"]).timestamp()
                        self.samples.append(LockSample(time.time(), str(src["holder"]), expires))
                except Exception:  # a node down: the next sample asks another
                    pass
                await asyncio.sleep(0.1)
        finally:
            await es.close()

    def longest_expired(self, lease: float) -> float:
        """Longest time the lock stood expired before the next write (by anyone) renewed or took it."""
        writes = sorted({(s.expires, s.holder) for s in self.samples})
        worst = 0.0
        for (prev, _), (nxt, _) in itertools.pairwise(writes):
            worst = max(worst, (nxt - lease) - prev)
        if writes:  # still expired at the last look?
            worst = max(worst, self.samples[-1].at - writes[-1][0])
        return worst

    def handover(self, since_wall: float) -> float | None:
        """Seconds from `since_wall` until a different holder than the one before it was seen, if any."""
        before = [s.holder for s in self.samples if s.at < since_wall]
        if not before:
            return None
        for s in self.samples:
            if s.at >= since_wall and s.holder != before[-1]:
                return s.at - since_wall
        return None

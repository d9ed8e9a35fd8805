"""Shared claims: concurrent claims for the same (project, queues, target) on one server are one store claim.

Claims that arrive while one for their key is in flight wait for it and then go together (`batching.Coalescer`,
one flush at a time per key): one `Store.claim_tasks` call (one search plus one conditional bulk on Elasticsearch, one SQLite transaction) for
the summed amount. The store applies our `change` to each task it takes, in claim order; the change hands
each task to the next caller that still needs one (round robin, so the head of the queue is shared fairly),
with that caller's worker id, claim time and a fresh claim id, and the results go back to the callers by
claim id. Nobody gets more than asked: if lost races made the store ask for more than was allocated, the
extra tasks go to a short caller of the same worker id or are handed back.

Each caller's tasks carry its own (worker id, `claimed_at`) pair, which identifies one claim call to the
claim resolver: callers sharing a worker id in one batch get claim times a microsecond apart.

A caller cancelled before its batch runs is never claimed for; one cancelled while it runs waits for the store's
answer and hands its share back before it ends, or those tasks would sit unrun until their processing timeout.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

from tasques.domain.errors import StoreUnavailable
from tasques.domain.http_target import TaskTarget
from tasques.domain.task import Task, TaskState
from tasques.service.batching import Coalescer
from tasques.service.clock import Clock
from tasques.service.events import NO_EVENTS, Outcome, TaskEvents
from tasques.store.base import Store

# A claim that gave up on stored tasks claims again for the slots they took, at most this many times in all.
GIVE_UP_ROUNDS = 3
# Claim calls per store claim at most (each asks for at most `max_claim_amount`).
MAX_ASKS = 100
# Keys remembered at most: idle ones are dropped past this.
MAX_KEYS = 1000

# (worker id, claimed_at, task, claim id) -> the claimed task, or one given up (dead); raises to skip it.
Claimer = Callable[[str, datetime, Task, str], Task]
UnknownClaim = Callable[[str, str, datetime], None]  # (project, worker id, claimed_at)
HandBack = Callable[[str, Sequence[Task]], Awaitable[None]]
Key = tuple[str, tuple[str, ...], TaskTarget]


@dataclass
class _Ask:
    worker_id: str
    amount: int
    at: datetime = datetime.min  # the claim time of its tasks, set by the batch
    got: list[Task] = field(default_factory=list)
    gone: bool = False  # the caller was cancelled
    taken: bool = False  # a batch has it
    ended: asyncio.Event = field(default_factory=asyncio.Event)  # its batch is over, `got` is final

    @property
    def need(self) -> int:
        return self.amount - len(self.got)


class SharedClaims:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        claimer: Claimer,
        unknown: UnknownClaim,
        hand_back: HandBack,
        events: TaskEvents = NO_EVENTS,
    ):
        self._store = store
        self._events = events
        self._clock = clock
        self._claimer = claimer
        self._unknown = unknown
        self._hand_back = hand_back
        self._batches: dict[Key, Coalescer[_Ask, list[Task]]] = {}
        self.store_calls = 0  # `claim_tasks` calls made, for metrics

    @property
    def idle(self) -> bool:
        """No claim waiting or in flight."""
        return all(batches.in_flight == 0 for batches in self._batches.values())

    async def claim(
        self, worker_id: str, project: str, queues: Sequence[str], amount: int, target: TaskTarget
    ) -> list[Task]:
        """Up to `amount` claimable tasks of `project`'s `queues`, claimed for `worker_id`, sharing the store call with
        concurrent claims of the same key. StoreUnavailable: reported as an unknown claim, and raised."""
        ask = _Ask(worker_id, amount)
        try:
            return await self._batches_of((project, tuple(queues), target)).submit(ask)
        except asyncio.CancelledError:
            ask.gone = True  # not taken yet: it never will be
            if ask.taken:
                await ask.ended.wait()
                if ask.got:
                    await self._hand_back(worker_id, ask.got)
            raise

    def _batches_of(self, key: Key) -> Coalescer[_Ask, list[Task]]:
        batches = self._batches.get(key)
        if batches is None:
            if len(self._batches) >= MAX_KEYS:
                self._batches = {k: b for k, b in self._batches.items() if b.in_flight}
            batches = self._batches[key] = Coalescer(partial(self._flush, key), max_batch=MAX_ASKS, flushes=1)
        return batches

    async def _flush(self, key: Key, all_asks: list[_Ask]) -> list[list[Task]]:
        project, queues, target = key
        asks = [a for a in all_asks if not a.gone]  # cancelled while queued: never claimed for
        for ask in asks:
            ask.taken = True
        now = self._clock()
        _claim_times(asks, now)
        try:
            for _ in range(GIVE_UP_ROUNDS):
                wanted = [a for a in asks if a.need > 0]
                if not wanted:
                    break
                split = _Split(wanted, self._claimer)
                self.store_calls += 1
                got = await self._store.claim_tasks(
                    list(queues), now, sum(a.need for a in wanted), split.change, target, project=project
                )
                self._tell(got, now)
                extra = split.deliver(got)
                if extra:
                    await self._hand_back_by_worker(extra)
                if all(t.state is TaskState.CLAIMED for t in got):
                    break
        except StoreUnavailable:
            # The store may have claimed tasks (even later) for these calls that nobody will ever receive.
            for ask in asks:
                self._unknown(project, ask.worker_id, ask.at)
                ask.got = []
            raise
        except BaseException:
            for ask in asks:
                ask.got = []  # a bug or a shutdown: nothing to hand back that we know of
            raise
        finally:
            for ask in asks:
                ask.ended.set()
        return [a.got for a in all_asks]

    def _tell(self, got: list[Task], now: datetime) -> None:
        """Every task the store claimed counts as claimed (those nobody takes are then unclaimed); those given up
        on at the claim end dead."""
        claimed = [t for t in got if t.state is TaskState.CLAIMED]
        if claimed:
            self._events.claimed(claimed, now)
        if len(claimed) < len(got):
            self._events.finished([t for t in got if t.state is not TaskState.CLAIMED], Outcome.DEAD, now)

    async def _hand_back_by_worker(self, tasks: list[Task]) -> None:
        by_worker: dict[str, list[Task]] = {}
        for task in tasks:
            claim = task.last_claimed
            by_worker.setdefault(claim.worker_id if claim is not None else "", []).append(task)
        for worker_id, tasks in by_worker.items():
            await self._hand_back(worker_id, tasks)


def _claim_times(asks: list[_Ask], now: datetime) -> None:
    """Each ask's claim time: `now`, a microsecond later per earlier ask of the same worker id."""
    seen: dict[str, int] = {}
    for ask in asks:
        n = seen.get(ask.worker_id, 0)
        seen[ask.worker_id] = n + 1
        ask.at = now + timedelta(microseconds=n)


class _Split:
    """One store call's allocation: the `change` hands tasks round robin to the asks that still need one."""

    def __init__(self, asks: list[_Ask], claimer: Claimer) -> None:
        self._asks = asks
        self._claimer = claimer
        self._allocated = [0] * len(asks)
        self._next = 0
        self._owner: dict[str, _Ask] = {}  # claim id -> its ask

    def change(self, task: Task) -> Task:
        i = self._pick()
        ask = self._asks[i]
        claim_id = uuid.uuid4().hex
        changed = self._claimer(ask.worker_id, ask.at, task, claim_id)  # raises: the store skips the task
        if changed.state is TaskState.CLAIMED:
            self._allocated[i] += 1
            self._owner[claim_id] = ask
            self._next = (i + 1) % len(self._asks)
        return changed

    def _pick(self) -> int:
        n = len(self._asks)
        for step in range(n):
            i = (self._next + step) % n
            if self._allocated[i] < self._asks[i].need:
                return i
        # Every ask is allocated in full, yet the store wants more: some allocations lost races. Allocate on
        # in turn; `deliver` moves or hands back whatever turns out to be more than an ask wanted.
        return self._next

    def deliver(self, got: list[Task]) -> list[Task]:
        """Give each claimed task to its ask; returns those no ask of their worker id has room for."""
        extra: list[Task] = []
        for task in got:
            ask = self._owner.get(task.claim_id or "")
            if task.state is not TaskState.CLAIMED or ask is None:
                continue  # given up (dead): nobody's
            if ask.need <= 0:
                ask = next((a for a in self._asks if a.worker_id == ask.worker_id and a.need > 0), None)
                if ask is None:
                    extra.append(task)
                    continue
            ask.got.append(task)
        return extra

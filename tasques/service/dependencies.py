"""The dependency resolver: waiting tasks are released or cancelled when what they wait on settles.

Flow. `on_settled` (a `TaskCore` hook) records the keys of tasks that just finished, per project, and starts one
background pass if none is running; a pass takes everything recorded so far (so one pass handles many finishes)
and, per project:
1. finds the waiting dependents of those keys (`Store.find_dependents`, one call per `FIND_KEYS` keys);
2. evaluates each one (`evaluate`): the settled states in hand first, then its other dependencies read with
   `Store.get_tasks`, a chunk per round for every undecided dependent at once, stopping at the first
   unfinished one. Leading dependencies already seen finished are remembered (`_settled_prefix`), so a join of
   10,000 costs about one chunk read per pass, not 10,000;
3. releases (`Task.released`, and the queue's blocked claims wake) or cancels (`Task.cancelled` with the
   reason, reported to `settled` so chains cascade) through `TaskCore.modify_many`.

Elasticsearch searches lag other servers' writes by `search_delay`, so each key is looked up a second time
after it (SQLite: 0, one pass). Waiting tasks just created (`on_waiting`) are evaluated directly, closing the
race of a dependency finishing between the creation's check and its insert. What a crash loses in between,
the leader's `sweep` repairs. Errors are logged per pass, never raised: one bad task never stops the loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime

from tasques.domain.dependencies import Decision, Verdict, decide, settled_ok
from tasques.domain.errors import NotClaimed
from tasques.domain.ref import QueueRef
from tasques.domain.task import Task, TaskKey, TaskState
from tasques.service.task_core import Change, Modification, TaskCore
from tasques.service.task_creation import DEPENDENCY_READ_CHUNK
from tasques.store.base import Store

log = logging.getLogger(__name__)

# Settled keys per `find_dependents` call, and the most dependents one call returns.
FIND_KEYS = 500
FIND_LIMIT = 1000
# How many dependents' settled prefixes are remembered.
PREFIX_MEMORY = 100_000
# Added to `search_delay` before the second lookup.
SECOND_PASS_MARGIN = 0.1

Key = tuple[str, str, str]  # (project, queue, id)


def _key(task: Task) -> Key:
    return (task.project, task.queue, task.id)


class DependencyResolver:
    def __init__(self, store: Store, tasks: TaskCore) -> None:
        self._store = store
        self._tasks = tasks
        # project -> settled key -> its state, or None when the task is not finished (e.g. deleted): read it.
        self._settled: dict[str, dict[TaskKey, TaskState | None]] = {}
        self._direct: dict[str, dict[Key, Task]] = {}  # waiting tasks to evaluate as they are
        self._runner: asyncio.Task[None] | None = None
        self._timers: set[asyncio.TimerHandle] = set()
        self._settled_prefix: OrderedDict[Key, int] = OrderedDict()
        self._closed = False

    # Hooks (return at once)

    def on_settled(self, tasks: Sequence[Task]) -> None:
        self._add_settled(tasks)
        delay = self._store.search_delay.total_seconds()
        if delay > 0 and tasks:
            # Dependents another server created just now may not be searchable yet: look again once they are.
            loop = asyncio.get_running_loop()
            later: list[asyncio.TimerHandle] = []
            handle = loop.call_later(delay + SECOND_PASS_MARGIN, lambda: self._second_pass(later[0], tasks))
            later.append(handle)
            self._timers.add(handle)

    def on_waiting(self, tasks: Sequence[Task]) -> None:
        for t in tasks:
            self._direct.setdefault(t.project, {})[_key(t)] = t
        self._kick()

    def _add_settled(self, tasks: Sequence[Task]) -> None:
        for t in tasks:
            self._settled.setdefault(t.project, {})[TaskKey(queue=t.queue, id=t.id)] = t.state if t.finished else None
        self._kick()

    def _second_pass(self, handle: asyncio.TimerHandle, tasks: Sequence[Task]) -> None:
        self._timers.discard(handle)
        self._add_settled(tasks)

    def _kick(self) -> None:
        if not self._closed and (self._runner is None or self._runner.done()):
            self._runner = asyncio.create_task(self._run(), name="dependency-resolver")

    async def idle(self) -> None:
        """Return once nothing is pending (second passes aside): for tests and an orderly stop."""
        while self._runner is not None and not self._runner.done():
            await asyncio.shield(self._runner)

    async def close(self) -> None:
        self._closed = True
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        # A pass under way finishes (cancelled with the caller, e.g. a stop past its deadline; the sweep repairs).
        if self._runner is not None and not self._runner.done():
            await self._runner

    async def _run(self) -> None:
        while self._settled or self._direct:
            settled, self._settled = self._settled, {}
            direct, self._direct = self._direct, {}
            for project in settled.keys() | direct.keys():
                try:
                    await self.resolve(project, settled.get(project, {}), list(direct.get(project, {}).values()))
                except Exception:
                    log.exception("could not resolve the dependents of %d settled tasks in project %s; the leader's "
                                  "sweep will", len(settled.get(project, {})), project)  # fmt: skip

    # Passes

    async def resolve(self, project: str, settled: dict[TaskKey, TaskState | None], direct: Sequence[Task]) -> int:
        """One pass for one project: the dependents of `settled`, and the `direct` tasks. Returns how many changed."""
        known: dict[TaskKey, TaskState | None] = {k: s for k, s in settled.items() if s is not None}
        seen: set[Key] = set()
        changed = 0
        keys = list(settled)
        for start in range(0, len(keys), FIND_KEYS):
            chunk = keys[start : start + FIND_KEYS]
            while True:
                found = await self._store.find_dependents(chunk, project=project, limit=FIND_LIMIT)
                fresh = [t for t in found if _key(t) not in seen]
                seen.update(_key(t) for t in fresh)
                moved = await self.evaluate(project, fresh, known)
                changed += moved
                # More than one answer holds: those settled now are no longer waiting, so ask again.
                if len(found) < FIND_LIMIT or not moved:
                    break
        rest = [t for t in direct if _key(t) not in seen]
        return changed + await self.evaluate(project, rest, known)

    async def evaluate(
        self, project: str, tasks: Sequence[Task], known: dict[TaskKey, TaskState | None] | None = None
    ) -> int:
        """Release or cancel each waiting task whose dependencies allow it; `known` states are trusted as they
        are. Returns how many changed."""
        states: dict[TaskKey, TaskState | None] = dict(known or {})
        decisions: dict[Key, tuple[Task, Decision]] = {}
        cursors: dict[Key, int] = {}
        pending: list[Task] = []
        for t in tasks:
            if t.state is not TaskState.WAITING or not t.depends_on:
                continue
            first = decide(t.depends_on, t.on_dependency_failure, states)
            if first.verdict is Verdict.CANCEL:  # a failure in hand: no read needed
                decisions[_key(t)] = (t, first)
                continue
            cursors[_key(t)] = self._settled_prefix.get(_key(t), 0)
            pending.append(t)
        while pending:
            wanted: dict[TaskKey, None] = {}
            still: list[Task] = []
            for t in pending:
                verdict = self._advance(t, states, cursors)
                if verdict is not None:
                    decisions[_key(t)] = (t, verdict)
                    continue
                still.append(t)
                deps = t.depends_on or []
                unread = (d for d in deps[cursors[_key(t)] :] if d not in states)
                for _, dep in zip(range(DEPENDENCY_READ_CHUNK), unread, strict=False):
                    wanted[dep] = None
            pending = still
            if wanted:
                states.update(await self._tasks_states(project, list(wanted)))
        for t, decision in decisions.values():
            if decision.verdict is Verdict.WAIT:
                self._remember(_key(t), cursors.get(_key(t), 0))
            else:
                self._settled_prefix.pop(_key(t), None)
        return await self._apply([d for d in decisions.values() if d[1].verdict is not Verdict.WAIT])

    def _advance(self, t: Task, states: dict[TaskKey, TaskState | None], cursors: dict[Key, int]) -> Decision | None:
        """Move the task's cursor over dependencies known settled; the decision, or None if one must be read."""
        deps, policy, k = t.depends_on or [], t.on_dependency_failure, _key(t)
        i = cursors[k]
        while i < len(deps) and deps[i] in states and settled_ok(states[deps[i]], policy):
            i += 1
        cursors[k] = i
        if i == len(deps):
            return Decision(Verdict.RELEASE)
        if deps[i] not in states:
            return None
        # A dependency that does not let it go: cancel if any known one failed (cancel policy), else wait.
        return decide(deps, policy, states)

    def _remember(self, key: Key, prefix: int) -> None:
        if prefix:
            self._settled_prefix[key] = prefix
            self._settled_prefix.move_to_end(key)
            while len(self._settled_prefix) > PREFIX_MEMORY:
                self._settled_prefix.popitem(last=False)

    async def _tasks_states(self, project: str, keys: list[TaskKey]) -> dict[TaskKey, TaskState | None]:
        got = await self._store.get_tasks(keys, project=project)
        return {k: (t.state if t is not None else None) for k, t in zip(keys, got, strict=True)}

    async def _apply(self, decided: list[tuple[Task, Decision]]) -> int:
        if not decided:
            return 0
        items = [Modification(QueueRef(t.project, t.queue), t.id, _change(d)) for t, d in decided]
        results = await self._tasks.modify_many(items)
        done = [r for r in results if isinstance(r, Task)]
        for (t, _), r in zip(decided, results, strict=True):
            if isinstance(r, Exception) and not isinstance(r, NotClaimed):
                log.warning("could not settle waiting task %s in queue %s: %s", t.id, t.queue, r)
        self._tasks.released([r for r in done if r.state is not TaskState.CANCELLED])
        self._tasks.cancelled_by_server([r for r in done if r.state is TaskState.CANCELLED])
        return len(done)

    async def sweep(self, batch: int) -> int:
        """The leader's repair: every waiting task, `batch` at a time, evaluated afresh. Returns how many changed."""
        changed = 0
        after: Key | None = None
        while True:
            page = await self._store.waiting_tasks(after, batch)
            by_project: dict[str, list[Task]] = {}
            for t in page:
                by_project.setdefault(t.project, []).append(t)
            for project, tasks in by_project.items():
                try:
                    changed += await self.evaluate(project, tasks)
                except Exception:
                    log.exception("dependency sweep: could not evaluate %d waiting tasks of project %s",
                                  len(tasks), project)  # fmt: skip
            if len(page) < batch:
                return changed
            after = _key(page[-1])


def _change(decision: Decision) -> Change:
    def change(task: Task, now: datetime) -> Task:
        if task.state is not TaskState.WAITING:
            raise NotClaimed(f"task {task.id} in queue {task.queue} is {task.state}, no longer waiting")
        if decision.verdict is Verdict.CANCEL:
            return task.cancelled(now, decision.reason)
        return task.released(now)

    return change

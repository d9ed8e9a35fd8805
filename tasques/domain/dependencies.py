"""Dependency rules: what a waiting task does given the states of its dependencies, and cycles in a bulk.

Pure: states are passed in. A dependency's state is None when the task is gone (deleted, or never existed);
a dependency absent from the mapping is one not read yet (the service reads them in chunks and stops early).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from tasques.domain.errors import FieldProblem, InvalidInput
from tasques.domain.task import FINISHED_STATES, DependencyFailure, TaskKey, TaskState

# Ends that fail a dependency: the dependent is cancelled, or runs anyway with `on_dependency_failure: run`.
FAILED_ENDS = frozenset({TaskState.DEAD, TaskState.CANCELLED})


class Verdict(StrEnum):
    WAIT = "wait"
    RELEASE = "release"
    CANCEL = "cancel"


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str | None = None  # why, for a cancel


WAIT = Decision(Verdict.WAIT)
RELEASE = Decision(Verdict.RELEASE)


def describe(key: TaskKey, state: TaskState | None) -> str:
    what = "missing (deleted)" if state is None else state.value
    return f"dependency {key.queue}/{key.id} is {what}"


def decide(
    depends_on: Sequence[TaskKey], policy: DependencyFailure | None, states: Mapping[TaskKey, TaskState | None]
) -> Decision:
    """Cancel as soon as one known dependency failed (policy cancel); release when every dependency is known and
    finished acceptably (done, or any end with policy run); else wait."""
    cancel = policy is not DependencyFailure.RUN
    complete = True
    for key in depends_on:
        if key not in states:
            complete = False
            continue
        state = states[key]
        if state is None or state in FAILED_ENDS:
            if cancel:
                return Decision(Verdict.CANCEL, describe(key, state))
        elif state not in FINISHED_STATES:
            complete = False
    return RELEASE if complete else WAIT


def settled_ok(state: TaskState | None, policy: DependencyFailure | None) -> bool:
    """Whether one dependency in this state lets the dependent go (finished, and not failed under cancel)."""
    if state is None or state in FAILED_ENDS:
        return policy is DependencyFailure.RUN
    return state in FINISHED_STATES


def distinct(depends_on: Sequence[TaskKey]) -> tuple[TaskKey, ...]:
    """The dependencies without repeats, in first-seen order (a repeat adds nothing)."""
    return tuple(dict.fromkeys(depends_on))


def check_no_cycle(items: Sequence[tuple[TaskKey | None, Sequence[TaskKey]]]) -> list[int]:
    """Bulk items (their key, when they name their id; their dependencies): InvalidInput naming
    `tasks.<i>.depends_on` of the first item found on a cycle (a self-dependency is one). Otherwise the item
    indexes in an order where every item comes after the items it depends on."""
    index = {key: i for i, (key, _) in enumerate(items) if key is not None}
    edges = [[index[d] for d in deps if d in index] for _, deps in items]
    white, grey, black = 0, 1, 2
    color = [white] * len(items)
    order: list[int] = []
    for start in range(len(items)):
        if color[start] != white:
            continue
        # Iterative depth-first search: a bulk's chain may be a thousand items long.
        stack: list[tuple[int, int]] = [(start, 0)]
        color[start] = grey
        while stack:
            node, pos = stack[-1]
            if pos < len(edges[node]):
                stack[-1] = (node, pos + 1)
                nxt = edges[node][pos]
                if color[nxt] == grey:
                    raise InvalidInput(
                        "dependency cycle",
                        [FieldProblem(f"tasks.{nxt}.depends_on", "is part of a dependency cycle between items")],
                    )
                if color[nxt] == white:
                    color[nxt] = grey
                    stack.append((nxt, 0))
            else:
                color[node] = black
                order.append(node)
                stack.pop()
    return order

"""The pure dependency rules: decide (wait, release, cancel with the reason) and bulk cycle detection."""

from __future__ import annotations

import pytest

from tasques.domain.dependencies import Verdict, check_no_cycle, decide, distinct
from tasques.domain.errors import InvalidInput
from tasques.domain.task import DependencyFailure, TaskKey, TaskState

A, B, C = TaskKey(queue="q", id="a"), TaskKey(queue="q", id="b"), TaskKey(queue="r", id="c")
CANCEL, RUN = DependencyFailure.CANCEL, DependencyFailure.RUN


def test_release_only_when_every_dependency_is_done() -> None:
    assert decide([A, B], CANCEL, {A: TaskState.DONE, B: TaskState.DONE}).verdict is Verdict.RELEASE
    assert decide([A, B], CANCEL, {A: TaskState.DONE, B: TaskState.CLAIMED}).verdict is Verdict.WAIT
    assert decide([A, B], CANCEL, {A: TaskState.DONE}).verdict is Verdict.WAIT  # B not read yet
    assert decide([A], CANCEL, {A: TaskState.WAITING}).verdict is Verdict.WAIT


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        (TaskState.DEAD, "dependency r/c is dead"),
        (TaskState.CANCELLED, "dependency r/c is cancelled"),
        (None, "dependency r/c is missing (deleted)"),
    ],
)
def test_a_failed_dependency_cancels_with_the_reason_even_while_others_run(
    state: TaskState | None, reason: str
) -> None:
    decision = decide([A, C], CANCEL, {A: TaskState.QUEUED, C: state})
    assert decision.verdict is Verdict.CANCEL
    assert decision.reason == reason
    # With `run`, a failure counts as finished: released once every one has finished.
    assert decide([A, C], RUN, {A: TaskState.QUEUED, C: state}).verdict is Verdict.WAIT
    assert decide([A, C], RUN, {A: TaskState.DONE, C: state}).verdict is Verdict.RELEASE


def test_distinct_keeps_the_first_of_each() -> None:
    assert distinct([A, B, A, C, B]) == (A, B, C)


def test_no_cycle_in_a_chain_or_a_diamond() -> None:
    d = TaskKey(queue="q", id="d")
    check_no_cycle([(A, []), (B, [A]), (C, [A]), (d, [B, C]), (None, [d, A])])


def test_a_cycle_names_an_item_on_it() -> None:
    with pytest.raises(InvalidInput) as e:
        check_no_cycle([(A, []), (B, [C]), (C, [B])])
    assert e.value.problems[0].field in {"tasks.1.depends_on", "tasks.2.depends_on"}
    with pytest.raises(InvalidInput) as e:
        check_no_cycle([(A, [A])])
    assert e.value.problems[0].field == "tasks.0.depends_on"


def test_a_long_chain_does_not_recurse() -> None:
    keys = [TaskKey(queue="q", id=str(i)) for i in range(5000)]
    check_no_cycle([(k, [keys[i - 1]] if i else []) for i, k in enumerate(keys)])
    with pytest.raises(InvalidInput):
        check_no_cycle([(k, [keys[i - 1]]) for i, k in enumerate(keys)])  # the first closes the ring

"""The claim and reaper changes: a task no transition can process becomes dead with the reason, never an error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tasques.domain.errors import NotClaimed
from tasques.domain.retry import BackoffPolicy, RetryPolicy
from tasques.domain.task import Metadata, Task, TaskState
from tasques.service.task_core import _claim, _timed_out

AT = datetime(2024, 1, 2, tzinfo=UTC)


def _stored(**fields: object) -> Task:
    """A task as an older version might have stored it: built without validation."""
    base: dict[str, object] = {
        "id": "t",
        "queue": "q",
        "kind": "k",
        "priority": 0,
        "run_at": AT,
        "state": TaskState.QUEUED,
        "retry_times": 3,
        "attempted": 0,
        "processing_timeout": timedelta(minutes=1),
        "last_enqueued_at": AT,
        "metadata": Metadata(created_at=AT, modified_at=AT),
    }
    base.update(fields)
    return Task.model_construct(**base)  # type: ignore[arg-type]


def test_claim_of_a_task_whose_transition_raises_makes_it_dead() -> None:
    bad = _stored(processing_timeout=None)
    dead = _claim("w", AT, bad)
    assert dead.state is TaskState.DEAD
    assert dead.last_claimed is not None
    assert dead.last_claimed.result is not None
    reason = dead.last_claimed.result.failure
    assert reason is not None
    assert reason["reason"].startswith("could not be claimed: TypeError")


def test_claim_of_a_good_task_claims_it_and_refusals_still_raise() -> None:
    claimed = _claim("w", AT, _stored())
    assert claimed.state is TaskState.CLAIMED
    with pytest.raises(NotClaimed):
        _claim("w", AT, claimed)  # not claimable: the store skips it, as before


def test_reaper_change_makes_a_task_whose_retry_raises_dead() -> None:
    broken_policy = RetryPolicy.model_construct(min_backoff=timedelta(seconds=1), max_backoff=timedelta(0))
    claimed = _stored(retry_policy=broken_policy).claimed("w", AT, "c1")
    dead = _timed_out(BackoffPolicy(), AT + timedelta(minutes=2), claimed)
    assert dead.state is TaskState.DEAD
    assert dead.last_claimed is not None
    assert dead.last_claimed.worker_id == "w"
    assert dead.last_claimed.result is not None
    assert dead.last_claimed.result.failure is not None
    assert dead.last_claimed.result.failure["reason"].startswith("could not be retried after its processing timeout")


def test_reaper_change_of_a_good_task_is_a_failed_attempt() -> None:
    claimed = _stored().claimed("w", AT, "c1")
    assert _timed_out(BackoffPolicy(), AT + timedelta(minutes=2), claimed).state is TaskState.FAILED

"""The producer helper (`tasques.worker.Producer`) against a real `tasques serve`."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tasques.worker import ApiError, Producer, ServerUnavailable, TasquesClient, new_task
from tests.process import ServerProcess, free_port


def _q() -> str:
    return f"q-{uuid.uuid4().hex[:8]}"


def test_new_task_builds_the_wire_body() -> None:
    at = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    body = new_task(
        "q",
        "k",
        {"n": 1},
        id="x",
        depends_on=[("a", "1"), {"queue": "b", "id": "2"}],
        on_dependency_failure="run",
        priority=5,
        run_at=at,
        processing_timeout=timedelta(seconds=90),
        retry_times=None,
    )
    assert body == {
        "queue": "q",
        "kind": "k",
        "args": {"n": 1},
        "id": "x",
        "depends_on": [{"queue": "a", "id": "1"}, {"queue": "b", "id": "2"}],
        "on_dependency_failure": "run",
        "priority": 5,
        "run_at": "2030-01-02T03:04:05+00:00",
        "processing_timeout": "90000ms",
    }
    with pytest.raises(ValueError, match="time-zone-aware"):
        new_task("q", "k", run_at=datetime(2030, 1, 1))


async def test_create_sends_the_fields_and_raises_the_servers_message(server: ServerProcess) -> None:
    queue = _q()
    async with Producer(server.url) as producer:
        task = await producer.create(queue, "k", {"n": 1}, id="a", priority=7, processing_timeout=timedelta(minutes=2))
        assert (task.id, task.queue, task.priority, task.args) == ("a", queue, 7, {"n": 1})
        assert task.processing_timeout == timedelta(minutes=2)
        with pytest.raises(ApiError) as taken:
            await producer.create(queue, "k", id="a")
        assert taken.value.status == 409
        assert "already exists" in taken.value.message
        with pytest.raises(ApiError) as bad:
            await producer.create("bad queue", "k")
        assert bad.value.status == 400
        assert [d["field"] for d in bad.value.details] == ["queue"]


async def test_depends_on_is_sent_and_accepted(server: ServerProcess) -> None:
    # The server side of dependencies is built on another branch: here the server accepts the body (it ignores
    # fields it does not know yet), which checks that the producer's request is well-formed.
    queue = _q()
    async with Producer(server.url) as producer:
        first = await producer.create(queue, "k", id="first")
        second = await producer.create(queue, "k", id="second", depends_on=[(queue, first.id)])
        assert second.id == "second"


async def test_create_many_gives_one_slot_per_task(server: ServerProcess) -> None:
    queue = _q()
    async with Producer(server.url) as producer:
        await producer.create(queue, "k", id="taken")
        results = await producer.create_many([new_task(queue, "k", id=f"t{i}") for i in range(1500)]
                                             + [new_task(queue, "k", id="taken")])  # fmt: skip
        assert len(results) == 1501
        assert all(not isinstance(r, ApiError) for r in results[:1500])
        last = results[-1]
        assert isinstance(last, ApiError)
        assert last.status == 409


async def test_a_batch_is_created_counted_and_completes_with_its_callback(server: ServerProcess) -> None:
    queue, joins = _q(), _q()
    batch_id = f"b-{uuid.uuid4().hex[:8]}"
    async with Producer(server.url) as producer:
        tasks = [new_task(queue, "resize", {"n": i}) for i in range(5)]
        created = await producer.create_batch(tasks, on_complete=new_task(joins, "album", {"a": 1}), id=batch_id)
        assert (created.id, created.total, created.counts["queued"], created.completed) == (batch_id, 5, 5, False)
        with pytest.raises(ApiError) as taken:
            await producer.create_batch(tasks, id=batch_id)
        assert taken.value.status == 409
        with pytest.raises(ApiError) as bad:
            await producer.create_batch([new_task(queue, "k"), {"queue": queue}])
        assert [d["field"] for d in bad.value.details] == ["tasks.1.kind"]

        async with TasquesClient(server.url, "producer-test-worker") as worker:
            claimed = await worker.claim([queue], amount=5, block_for=2.0)
            assert len(claimed) == 5
            for t in claimed:
                await worker.done(t.queue, t.id, claim_id=t.last_claimed.claim_id if t.last_claimed else None)
            for _ in range(100):
                status = await producer.get_batch(batch_id)
                if status.completed:
                    break
                await asyncio.sleep(0.05)
            assert status.completed
            assert status.counts["done"] == 5
            assert status.callback is not None
            assert (status.callback.queue, status.callback.id) == (joins, f"{batch_id}.done")
            callback = await worker.get_task(joins, f"{batch_id}.done")
            assert callback.args == {
                "a": 1,
                "batch": {
                    "id": batch_id,
                    "total": 5,
                    "counts": {**dict.fromkeys(status.counts, 0), "done": 5},
                    "deleted": 0,
                },
            }
        with pytest.raises(ApiError) as missing:
            await producer.get_batch("no-such-batch")
        assert missing.value.status == 404


async def test_an_unreachable_server_is_unavailable() -> None:
    async with Producer(f"http://127.0.0.1:{free_port()}", request_timeout=2) as producer:
        with pytest.raises(ServerUnavailable):
            await producer.get_batch("x")


def test_credentials() -> None:
    with pytest.raises(ValueError, match="http"):
        Producer("ftp://x")
    with pytest.raises(ValueError, match="token"):
        Producer("http://x", project="p")
    assert Producer("http://x", token="t")._headers["Authorization"] == "Bearer t"
    assert Producer("http://x", token="t", project="p")._headers["Authorization"].startswith("Basic ")

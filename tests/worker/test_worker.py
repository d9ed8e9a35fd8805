"""The worker SDK against real `tasques serve` processes on SQLite: no mocks.

Most tests share one server (module scope, fast reaping and backoff) and keep apart by queue name. Workers run
in-process, except where a signal or a crash is the point: then `python -m tasques.worker.cli` runs as a real
subprocess with handlers from `tests/worker/handlers_example.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tasques.worker import ClaimLost, TaskContext, Worker, WorkerError
from tasques.worker.cli import add_worker_parser, load_handlers, run_worker_cli
from tasques.worker.client import JsonDict, basic_auth_header
from tests.process import ServerProcess
from tests.worker import handlers_example
from tests.worker.helpers import (
    all_in_state,
    counts,
    create,
    eventually,
    get_task,
    list_tasks,
    running,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

REPO = Path(__file__).resolve().parents[2]


class WorkerProcess:
    """`python -m tasques.worker.cli ...` as a real subprocess, logging to a file."""

    def __init__(self, args: list[str], log_path: Path) -> None:
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tasques.worker.cli", "--log-level", "DEBUG", *args],
                cwd=REPO,
                env={k: v for k, v in os.environ.items() if not k.startswith("TASQUES_")},
                stdout=log,
                stderr=log,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def wait(self, within: float) -> int:
        deadline = asyncio.get_running_loop().time() + within
        while self.proc.poll() is None:
            if asyncio.get_running_loop().time() > deadline:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"worker did not exit within {within}s:\n{self.log()[-4000:]}")
            await asyncio.sleep(0.05)
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


async def started(session: aiohttp.ClientSession, url: str, queue: str, task_id: str) -> bool:
    task = await get_task(session, url, queue, task_id)
    report = (task.get("last_claimed") or {}).get("last_report") or {}
    return bool((report.get("data") or {}).get("started"))


# -- processing ------------------------------------------------------------------------------------------


async def test_many_tasks_of_two_kinds_are_processed(server: ServerProcess, session: aiohttp.ClientSession) -> None:
    async def add(ctx: TaskContext) -> JsonDict:
        args = ctx.task.args or {}
        return {"sum": args["x"] + args["y"]}

    async def shout(ctx: TaskContext) -> JsonDict:
        await ctx.report({"progress": 0.5})
        return {"text": str((ctx.task.args or {})["text"]).upper()}

    for i in range(30):
        await create(session, server.url, "happy-math", "add", id=f"a{i}", args={"x": i, "y": 100})
        await create(session, server.url, "happy-text", "shout", id=f"s{i}", args={"text": f"hi {i}"})
    worker = Worker(server.url, "happy", ["happy-math", "happy-text"], {"add": add, "shout": shout}, block_for=0.5)
    async with running(worker):
        await all_in_state(session, server.url, "happy-math", "done", 30)
        await all_in_state(session, server.url, "happy-text", "done", 30)

    for task in await list_tasks(session, server.url, "happy-math"):
        i = int(task["id"][1:])
        assert (task["state"], task["attempted"]) == ("done", 1)
        assert task["last_claimed"]["worker_id"] == "happy"
        assert task["last_claimed"]["result"]["success"] == {"sum": i + 100}
    for task in await list_tasks(session, server.url, "happy-text"):
        assert task["last_claimed"]["result"]["success"] == {"text": f"HI {task['id'][1:]}"}
        assert task["last_claimed"]["last_report"]["data"] == {"progress": 0.5}
    assert (worker.stats.claimed, worker.stats.done, worker.stats.failed) == (60, 60, 0)


async def test_failures_carry_error_type_message_and_traceback(
    server: ServerProcess, session: aiohttp.ClientSession
) -> None:
    q = "failures"

    async def explode(ctx: TaskContext) -> JsonDict:
        raise ValueError(f"cannot handle {(ctx.task.args or {})['n']}")

    async def wrong_return(ctx: TaskContext) -> Any:
        return ["not", "a", "dict"]

    await create(session, server.url, q, "explode", id="boom", args={"n": 7}, retry_times=1)
    await create(session, server.url, q, "unheard-of", id="orphan", retry_times=0)
    await create(session, server.url, q, "wrong_return", id="wrong", retry_times=0)
    worker = Worker(server.url, "failer", [q], {"explode": explode, "wrong_return": wrong_return}, block_for=0.5)
    async with running(worker):
        await all_in_state(session, server.url, q, "dead", 3)

    boom = await get_task(session, server.url, q, "boom")
    assert boom["attempted"] == 2  # retried once (after the server's backoff), then dead
    failure = boom["last_claimed"]["result"]["failure"]
    assert failure["error_type"] == "ValueError"
    assert failure["message"] == "cannot handle 7"
    assert failure["traceback"].startswith("Traceback (most recent call last):")
    assert "in explode" in failure["traceback"]
    assert "ValueError: cannot handle 7" in failure["traceback"]

    orphan = (await get_task(session, server.url, q, "orphan"))["last_claimed"]["result"]["failure"]
    assert orphan["error_type"] == "NoHandler"
    assert orphan["message"] == "no handler for kind 'unheard-of'"

    wrong = (await get_task(session, server.url, q, "wrong"))["last_claimed"]["result"]["failure"]
    assert wrong["error_type"] == "TypeError"
    assert "returned list, expected a dict or None" in wrong["message"]
    assert (worker.stats.done, worker.stats.failed) == (0, 4)


async def test_concurrency_limit_is_respected_and_claims_never_exceed_free_slots(
    server: ServerProcess, session: aiohttp.ClientSession
) -> None:
    q = "limited"
    running_now = 0
    peak = 0
    claimed_seen: list[int] = []

    async def work(ctx: TaskContext) -> JsonDict:
        nonlocal running_now, peak
        running_now += 1
        peak = max(peak, running_now)
        try:
            # The server's view: this worker never holds more claims than it has slots.
            claimed_seen.append((await counts(session, server.url, q))["claimed"])
            await asyncio.sleep(0.1)
        finally:
            running_now -= 1
        return {}

    for i in range(24):
        await create(session, server.url, q, "work", id=f"w{i}")
    worker = Worker(server.url, "limited", [q], {"work": work}, concurrency=3, claim_amount=10, block_for=0.5)
    async with running(worker):
        await all_in_state(session, server.url, q, "done", 24)

    assert peak == 3
    assert worker.stats.max_running == 3
    assert len(claimed_seen) == 24
    assert max(claimed_seen) <= 3


# -- heartbeats ------------------------------------------------------------------------------------------


async def test_heartbeats_keep_a_long_task_alive(server: ServerProcess, session: aiohttp.ClientSession) -> None:
    q = "heartbeat"
    attempts: list[int] = []

    async def long(ctx: TaskContext) -> JsonDict:
        attempts.append(ctx.task.attempted)
        await asyncio.sleep(5)  # 2.5x the processing timeout
        return {"ok": True}

    await create(session, server.url, q, "long", id="long", processing_timeout="2s", retry_times=3)
    worker = Worker(server.url, "beating", [q], {"long": long}, concurrency=2, block_for=0.5)
    async with running(worker):
        await all_in_state(session, server.url, q, "done", 1)

    task = await get_task(session, server.url, q, "long")
    assert task["attempted"] == 1
    assert attempts == [1]
    assert task["last_claimed"]["result"]["success"] == {"ok": True}
    assert "last_report" in task["last_claimed"]  # the heartbeats
    assert worker.stats.claims_lost == 0


async def test_without_heartbeats_the_same_task_is_reaped_and_retried(
    server: ServerProcess, session: aiohttp.ClientSession
) -> None:
    q = "no-heartbeat"
    attempts: list[int] = []
    retried = asyncio.Event()

    async def long(ctx: TaskContext) -> JsonDict:
        attempts.append(ctx.task.attempted)
        if ctx.task.attempted > 1:
            retried.set()
        await asyncio.sleep(5)
        return {"ok": True}

    await create(session, server.url, q, "long", id="long", processing_timeout="2s", retry_times=3)
    worker = Worker(server.url, "silent", [q], {"long": long}, concurrency=2, block_for=0.5, heartbeats=False)
    async with running(worker):
        # The claim times out after 2s, the reaper fails the attempt, and this worker claims the retry.
        await asyncio.wait_for(retried.wait(), 15)
        task = await get_task(session, server.url, q, "long")
        assert task["attempted"] == 2
        assert task["state"] == "claimed"
        worker.stop(immediate=True)

    assert attempts == [1, 2]
    # The first run was superseded (its outcome discarded); the second was cancelled and handed back.
    task = await get_task(session, server.url, q, "long")
    assert (task["state"], task["attempted"]) == ("queued", 1)


async def test_the_worker_sends_its_claim_id_so_a_stale_attempt_never_acts_on_a_newer_claim(
    server: ServerProcess, session: aiohttp.ClientSession
) -> None:
    """The SDK shares one worker id across its slots: only the claim id tells its attempts apart."""
    q, worker_id = "claim-ids", "tokens"
    started, release = asyncio.Event(), asyncio.Event()
    refused: list[int] = []

    async def slow(ctx: TaskContext) -> JsonDict:
        started.set()
        await release.wait()
        try:
            await ctx.report({"late": True})
        except ClaimLost as e:
            refused.append(e.status)
        return {"from": "the first attempt"}

    await create(session, server.url, q, "slow", id="t")
    worker = Worker(server.url, worker_id, [q], {"slow": slow}, concurrency=1, block_for=0.5)
    async with running(worker):
        await asyncio.wait_for(started.wait(), 15)
        first = (await get_task(session, server.url, q, "t"))["last_claimed"]["claim_id"]
        # Meanwhile the claim ends and the task is claimed again under the same worker id (as after a timeout).
        headers = {"X-TASQUES-WORKER-ID": worker_id, "X-TASQUES-CLAIM-ID": first}
        async with session.delete(f"{server.url}/tasques/claims/{q}/t", headers=headers) as r:
            assert r.status == 200, await r.text()
        async with session.post(
            f"{server.url}/tasques/claims", json={"queues": [q]}, headers={"X-TASQUES-WORKER-ID": worker_id}
        ) as r:
            [newer] = await r.json()
        assert newer["last_claimed"]["claim_id"] != first
        release.set()

        async def lost() -> bool:
            return worker.stats.claims_lost == 1

        await eventually(lost, what="the first attempt's done to be refused")
    assert refused == [409]
    assert (worker.stats.done, worker.stats.claims_lost) == (0, 1)
    task = await get_task(session, server.url, q, "t")
    # The newer claim is untouched: neither the late report nor the late done reached it.
    assert task["state"] == "claimed"
    assert task["last_claimed"] == newer["last_claimed"]


# -- shutdown --------------------------------------------------------------------------------------------


async def test_tasks_claimed_while_stopping_are_unclaimed_not_started(
    server: ServerProcess, session: aiohttp.ClientSession
) -> None:
    q = "stop-mid-claim"
    ran: list[str] = []

    async def first(ctx: TaskContext) -> JsonDict:
        ran.append(ctx.task.id)

        async def claim_in_flight() -> bool:
            return worker._claim_in_flight

        # The claim loop is now long-polling for the worker's second slot; stop, then give that claim a task.
        await eventually(claim_in_flight, within=5, what="the second claim")
        worker.stop()
        await create(session, server.url, q, "second", id="late")
        return {"first": True}

    async def second(ctx: TaskContext) -> JsonDict:
        ran.append(ctx.task.id)
        return {}

    await create(session, server.url, q, "first", id="early")
    worker = Worker(
        server.url, "stopper", [q], {"first": first, "second": second}, concurrency=2, claim_amount=2, block_for=10
    )
    await asyncio.wait_for(worker.run(), 20)

    assert ran == ["early"]
    early = await get_task(session, server.url, q, "early")
    assert (early["state"], early["attempted"]) == ("done", 1)
    late = await get_task(session, server.url, q, "late")
    assert (late["state"], late["attempted"]) == ("queued", 0)
    # Handed back, not run: the unclaim keeps the claim visible (as the original Tasques does), with no result.
    assert late["last_claimed"]["worker_id"] == "stopper"
    assert "result" not in late["last_claimed"]
    assert (worker.stats.claimed, worker.stats.unclaimed) == (2, 1)


async def test_sigterm_finishes_in_flight_work_within_grace_and_unclaims_the_rest(
    server: ServerProcess, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    q = "sigterm"
    await create(session, server.url, q, "quick", id="quick", priority=10, args={"seconds": 1.5})
    await create(session, server.url, q, "slow", id="slow", priority=10)
    await create(session, server.url, q, "quick", id="waiting", priority=0)
    worker = WorkerProcess(
        [
            *("--server", server.url, "--queue", q, "--handlers", "tests.worker.handlers_example"),
            *("--worker-id", "terminated", "--concurrency", "2", "--claim-amount", "5", "--shutdown-grace", "3s"),
        ],
        tmp_path / "worker.log",
    )
    try:

        async def both_started() -> bool:
            return await started(session, server.url, q, "quick") and await started(session, server.url, q, "slow")

        await eventually(both_started, what="both handlers to start")
        worker.proc.send_signal(signal.SIGTERM)
        assert await worker.wait(within=20) == 0, worker.log()[-4000:]
    finally:
        worker.kill()

    quick = await get_task(session, server.url, q, "quick")
    assert (quick["state"], quick["attempted"]) == ("done", 1)  # finished within the grace period
    assert quick["last_claimed"]["result"]["success"]["worker_id"] == "terminated"
    slow = await get_task(session, server.url, q, "slow")
    assert (slow["state"], slow["attempted"]) == ("queued", 0)  # cancelled after the grace period, handed back
    waiting = await get_task(session, server.url, q, "waiting")
    assert (waiting["state"], waiting["attempted"]) == ("queued", 0)  # never claimed: no free slot, then stopping
    assert "task sigterm/slow unclaimed" in worker.log()


async def test_a_worker_killed_mid_task_has_its_task_retried_by_another(
    server: ServerProcess, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    q = "killed"
    await create(session, server.url, q, "slow_first_attempt", id="victim", processing_timeout="1s")
    doomed = WorkerProcess(
        [
            *("--server", server.url, "--queue", q, "--worker-id", "doomed", "--concurrency", "1"),
            *("--handlers", "tests.worker.handlers_example:CRASH_HANDLERS"),
        ],
        tmp_path / "doomed.log",
    )
    try:
        await eventually(lambda: started(session, server.url, q, "victim"), what="the handler to start")
    finally:
        doomed.kill()  # SIGKILL mid-task: no unclaim, no failure report

    survivor = Worker(server.url, "survivor", [q], handlers_example.CRASH_HANDLERS, block_for=0.5)
    async with running(survivor):
        # The claim times out (1s after the last heartbeat), is reaped, and the survivor claims the retry.
        await all_in_state(session, server.url, q, "done", 1)

    task = await get_task(session, server.url, q, "victim")
    assert task["attempted"] == 2
    assert task["last_claimed"]["worker_id"] == "survivor"
    assert task["last_claimed"]["result"]["success"] == {"attempted": 2, "worker_id": "survivor"}


# -- connectivity ----------------------------------------------------------------------------------------


async def test_worker_waits_for_the_server_and_survives_a_restart(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    q = "reconnect"
    server = ServerProcess({"TASQUES_STORE_SQLITE_PATH": str(tmp_path / "t.db")}, tmp_path / "server.log")

    async def echo(ctx: TaskContext) -> JsonDict:
        return {"id": ctx.task.id}

    worker = Worker(server.url, "patient", [q], {"echo": echo}, block_for=0.5, backoff_initial=0.05, backoff_max=0.2)
    try:
        async with running(worker):

            async def failed_to_connect(times: int) -> None:
                async def check() -> bool:
                    return worker.stats.connection_errors >= times

                await eventually(check, what=f"{times} connection errors")

            await failed_to_connect(2)  # started before the server: backing off and retrying
            await asyncio.to_thread(server.start)
            for i in range(5):
                await create(session, server.url, q, "echo", id=f"before{i}")
            await all_in_state(session, server.url, q, "done", 5)

            errors = worker.stats.connection_errors
            await asyncio.to_thread(server.stop)
            await failed_to_connect(errors + 2)
            await asyncio.to_thread(server.start)  # same port, same database
            for i in range(5):
                await create(session, server.url, q, "echo", id=f"after{i}")
            await all_in_state(session, server.url, q, "done", 10)
            tasks = await list_tasks(session, server.url, q)
    finally:
        server.stop()

    assert {t["id"]: (t["state"], t["attempted"]) for t in tasks} == {
        **{f"before{i}": ("done", 1) for i in range(5)},
        **{f"after{i}": ("done", 1) for i in range(5)},
    }
    assert all(t["last_claimed"]["result"]["success"] == {"id": t["id"]} for t in tasks)


async def test_worker_sends_basic_auth_and_stops_on_rejected_claims(tmp_path: Path) -> None:
    settings = {
        "TASQUES_STORE_SQLITE_PATH": str(tmp_path / "t.db"),
        "TASQUES_SERVER_BASIC_AUTH": '[{"name": "w", "password": "s3cret"}]',
    }
    with ServerProcess(settings, tmp_path / "server.log") as server:
        async with aiohttp.ClientSession(headers={"Authorization": basic_auth_header("w", "s3cret")}) as session:
            await create(session, server.url, "auth", "echo", id="one")

            async def echo(ctx: TaskContext) -> JsonDict:
                return {"ok": True}

            worker = Worker(server.url, "auth", ["auth"], {"echo": echo}, block_for=0.5, basic_auth=("w", "s3cret"))
            async with running(worker):
                await all_in_state(session, server.url, "auth", "done", 1)

        # Wrong credentials are not a connectivity problem: the worker gives up instead of retrying forever.
        bad = Worker(server.url, "intruder", ["auth"], {"echo": echo}, block_for=0.5, basic_auth=("w", "wrong"))
        with pytest.raises(WorkerError, match="401"):
            await asyncio.wait_for(bad.run(), 10)


# -- the CLI and the SDK's boundaries --------------------------------------------------------------------


def test_load_handlers_takes_handlers_by_default_or_the_named_attribute() -> None:
    assert load_handlers("tests.worker.handlers_example") == handlers_example.HANDLERS
    assert load_handlers("tests.worker.handlers_example:CRASH_HANDLERS") == handlers_example.CRASH_HANDLERS


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("tests.worker.no_such_module", "cannot import tests.worker.no_such_module"),
        ("tests.worker.handlers_example:MISSING", "has no attribute MISSING"),
        ("tests.worker.handlers_example:quick", "must be a non-empty dict"),
    ],
)
def test_the_worker_command_rejects_bad_handlers(spec: str, problem: str, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="tasques")
    add_worker_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["worker", "--queue", "q", "--handlers", spec, "--concurrency", "2"])
    assert (args.command, args.queues, args.concurrency) == ("worker", ["q"], 2)
    assert run_worker_cli(args) == 2
    assert problem in capsys.readouterr().err


def test_the_sdk_imports_nothing_from_the_server() -> None:
    code = (
        "import sys, tasques.worker, tasques.worker.cli\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[:2] in "
        "(['tasques', 'api'], ['tasques', 'service'], ['tasques', 'store'], ['tasques', 'domain'], "
        "['tasques', 'server'], ['tasques', 'config'], ['tasques', 'leader']))\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

"""Worker processes (`bench.worker_proc`), driven from the benchmark: start, go, follow progress, stop, collect."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from bench.env import REPO, BenchFailure, Json, check


@dataclass
class _Proc:
    proc: asyncio.subprocess.Process
    done: int = 0
    last_done_at: float = 0.0
    result: Json | None = None
    reader: asyncio.Task[None] | None = None
    progressed: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True)
class PoolResult:
    """What the workers did, as they saw it."""

    done: int
    last_done_at: float
    received: list[tuple[str, float]]  # (task id, claim-receive time) per handler run, duplicates included
    claim_sizes: list[int]
    stats: list[Json]
    done_batch_sizes: list[int] = field(default_factory=list)  # items per done batch request

    def claim_summary(self) -> Json:
        sizes = self.claim_sizes
        return {
            "claims_with_tasks": len(sizes),
            "mean_claim_size": round(sum(sizes) / len(sizes), 2) if sizes else 0.0,
            "max_claim_size": max(sizes, default=0),
            "mean_done_batch": round(sum(batches) / len(batches), 2) if (batches := self.done_batch_sizes) else 0.0,
        }

    def verify(self, expected: int | None = None) -> None:
        """Every handled task ran exactly once and was reported done; nothing failed, was lost or errored."""
        ids = [task_id for task_id, _ in self.received]
        dupes = [i for i, n in Counter(ids).items() if n > 1]
        check(not dupes, f"{len(dupes)} tasks ran more than once, e.g. {dupes[:3]}")
        total = {k: sum(int(s[k]) for s in self.stats) for k in ("claimed", "done", "failed", "claims_lost")}
        check(total["failed"] == 0, f"{total['failed']} tasks failed")
        check(total["claims_lost"] == 0, f"{total['claims_lost']} claims were lost")
        check(total["done"] == len(ids), f"{len(ids)} handler runs but {total['done']} done calls succeeded")
        unclaimed = sum(int(s["unclaimed"]) for s in self.stats)
        check(
            total["claimed"] == len(ids) + unclaimed,
            f"{total['claimed']} claimed but {len(ids)} ran and {unclaimed} were handed back",
        )
        if expected is not None:
            check(len(ids) == expected, f"the workers ran {len(ids)} tasks, expected {expected}")


class ProcessPool:
    """Worker processes that speak the line protocol of `bench.worker_proc` (ready, go, progress, stop, result).

    `command` is the argv after the Python executable; the SDK pool below and the peers (`bench.peers`) share this.
    `command_for` may give each process its own (the SDK pool spreads its processes over several servers).
    """

    def __init__(
        self, command: list[str], *, processes: int, log_path: Path, env: dict[str, str] | None = None
    ) -> None:
        self.command = command
        self._env = {**os.environ, **env} if env else None  # None: inherit
        self.processes = processes
        self._log_path = log_path
        self._log: IO[bytes] | None = None
        self._procs: list[_Proc] = []
        self._progress = asyncio.Event()

    def command_for(self, i: int) -> list[str]:
        """The argv of process `i`."""
        return self.command

    @property
    def pids(self) -> list[int]:
        return [p.proc.pid for p in self._procs]

    async def start(self, within: float = 60.0) -> None:
        self._log = self._log_path.open("ab")
        for i in range(self.processes):
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                *self.command_for(i),
                cwd=REPO,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=self._log,
                limit=2**26,  # the result line carries every task id
                env=self._env,
            )
            self._procs.append(_Proc(proc))
        for p in self._procs:
            assert p.proc.stdout is not None
            line = await asyncio.wait_for(p.proc.stdout.readline(), within)
            if line.strip() != b"ready":
                raise RuntimeError(f"worker process {p.proc.pid} did not start: {line[:200]!r}; see {self._log_path}")
            p.reader = asyncio.create_task(self._follow(p))

    async def _follow(self, p: _Proc) -> None:
        assert p.proc.stdout is not None
        while line := await p.proc.stdout.readline():
            kind, _, rest = line.decode().strip().partition(" ")
            if kind == "progress":
                done, at = rest.split()
                p.done, p.last_done_at = int(done), float(at)
                self._progress.set()
            elif kind == "result":
                p.result = json.loads(rest)
        self._progress.set()  # exited: wake anyone waiting on progress

    def go(self) -> float:
        """Let every process start claiming; returns the wall-clock start time."""
        started = time.time()
        for p in self._procs:
            assert p.proc.stdin is not None
            p.proc.stdin.write(b"go\n")
        return started

    @property
    def done(self) -> int:
        return sum(p.done for p in self._procs)

    async def wait_for_done(self, target: int, stall_timeout: float, overall_timeout: float) -> None:
        """Until the workers report `target` tasks done; fails if progress stalls (e.g. tasks went missing)."""
        deadline = time.monotonic() + overall_timeout
        while self.done < target:
            if any(p.proc.returncode is not None for p in self._procs):
                raise BenchFailure(f"a worker process exited early at {self.done}/{target}; see {self._log_path}")
            self._progress.clear()
            wait = min(stall_timeout, deadline - time.monotonic())
            if wait <= 0:
                raise BenchFailure(f"the workers did only {self.done}/{target} tasks within {overall_timeout:.0f}s")
            try:
                await asyncio.wait_for(self._progress.wait(), wait)
            except TimeoutError:
                raise BenchFailure(
                    f"no progress for {stall_timeout:.0f}s at {self.done}/{target} tasks done "
                    "(lost tasks, or a stuck server)"
                ) from None

    async def stop_processes(self, within: float = 60.0) -> list[Json]:
        """Stop every process gracefully; the result each one printed."""
        for p in self._procs:
            if p.proc.stdin is not None and p.proc.returncode is None:
                p.proc.stdin.write(b"stop\n")
                p.proc.stdin.close()
        try:
            await asyncio.wait_for(asyncio.gather(*(p.proc.wait() for p in self._procs)), within)
            await asyncio.gather(*(p.reader for p in self._procs if p.reader is not None))
        finally:
            self.kill()
        missing = [p.proc.pid for p in self._procs if p.result is None]
        check(not missing, f"worker processes {missing} returned no result; see {self._log_path}")
        results = [p.result for p in self._procs if p.result is not None]
        errors = [e for r in results for e in r["errors"]]
        check(not errors, f"workers raised: {errors[:3]}")
        return results

    def kill(self) -> None:
        for p in self._procs:
            if p.proc.returncode is None:
                p.proc.kill()
        if self._log is not None:
            self._log.close()
            self._log = None


class WorkerPool(ProcessPool):
    """`processes` x `workers_per_process` SDK `Worker`s, each with `concurrency` slots, claiming `claim_amount`.

    `server_url` may list several servers: process i then talks to server i mod their number."""

    def __init__(
        self,
        server_url: str | Sequence[str],
        queue: str,
        *,
        processes: int,
        workers_per_process: int,
        claim_amount: int,
        concurrency: int,
        block_for: float,
        log_path: Path,
        single_calls: bool = False,
        token: str | None = None,
    ) -> None:
        """`token`: every worker sends it as a Bearer token (passed as TASQUES_TOKEN, not on the command line)."""
        self._servers = [server_url] if isinstance(server_url, str) else list(server_url)
        args = ["--server", self._servers[0], "--queue", queue, "--workers", str(workers_per_process)]
        args += ["--claim-amount", str(claim_amount), "--concurrency", str(concurrency), "--block-for", str(block_for)]
        if single_calls:
            args.append("--single-calls")
        env = {"TASQUES_TOKEN": token} if token is not None else None
        super().__init__(["-m", "bench.worker_proc", *args], processes=processes, log_path=log_path, env=env)

    def command_for(self, i: int) -> list[str]:
        command = list(self.command)
        command[command.index("--server") + 1] = self._servers[i % len(self._servers)]
        return command

    async def stop(self, within: float = 60.0) -> PoolResult:
        """Stop every worker gracefully and collect what each process did."""
        results = await self.stop_processes(within)
        return PoolResult(
            done=sum(int(r["done"]) for r in results),
            last_done_at=max(float(r["last_done_at"]) for r in results),
            received=[(str(i), float(t)) for r in results for i, t in r["received"]],
            claim_sizes=[int(n) for r in results for n in r["claim_sizes"]],
            stats=[s for r in results for s in r["stats"]],
            done_batch_sizes=[int(n) for r in results for n in r.get("done_batch_sizes", [])],
        )

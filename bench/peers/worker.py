"""One worker process of a peer task queue: `python -m bench.peers.worker PEER --url URL --threads N`.

The same line protocol as `bench.worker_proc` (driven by `bench.workers.ProcessPool`): `ready`, then wait for
`go`; `progress <done> <time of the last done>` while the peer's own consumer runs; on `stop` a graceful stop
of that consumer, then `result <json>` with every task id the handler ran (duplicates included) and the
errors the peer logged. The no-op handler only records `(task id, time.time())` as it returns.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
import threading
import time
from typing import Protocol

PROGRESS_EVERY = 0.05
SAMPLE_EVERY = 0.005


class Recorder:
    """What the handler ran. `list.append` is atomic in CPython, so handler threads need no lock."""

    def __init__(self) -> None:
        self.received: list[tuple[str, float]] = []

    def __call__(self, task_id: str) -> None:
        self.received.append((task_id, time.time()))


class Consumer(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None:
        """Graceful: returns once the tasks in flight have finished and been acknowledged."""


class _Errors(logging.Handler):
    """Errors the peer logs (a failed task, a lost connection): any one fails the run."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.name}: {record.getMessage()}"[:500])


def _emit(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main(args: argparse.Namespace) -> None:
    errors = _Errors()
    logging.getLogger().addHandler(errors)
    peer = importlib.import_module(f"bench.peers.{args.peer}")
    record = Recorder()
    consumer: Consumer = peer.consumer(args.url, args.threads, record)
    _emit("ready")
    if sys.stdin.readline().strip() != "go":
        return
    consumer.start()
    stop = threading.Event()

    def wait_for_stop() -> None:
        sys.stdin.readline()  # "stop", or the end of input
        stop.set()

    threading.Thread(target=wait_for_stop, daemon=True).start()
    reported, next_report = -1, 0.0
    while not stop.wait(SAMPLE_EVERY):
        done = len(record.received)
        if done != reported and time.monotonic() >= next_report:
            _emit(f"progress {done} {record.received[done - 1][1] if done else time.time():.6f}")
            reported, next_report = done, time.monotonic() + PROGRESS_EVERY
    try:
        consumer.stop()
    except Exception as e:
        errors.messages.append(f"stopping: {e!r}")
    received = record.received
    result = {
        "pid": os.getpid(),
        "done": len(received),
        "last_done_at": max((t for _, t in received), default=0.0),
        "received": received,
        "errors": errors.messages,
    }
    _emit("result " + json.dumps(result))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.peers.worker")
    p.add_argument("peer", help="module under bench.peers, e.g. dramatiq_redis")
    p.add_argument("--url", required=True, help="the peer's broker or database (for huey: the SQLite file)")
    p.add_argument(
        "--threads",
        type=int,
        default=4,
        help="handler threads per process (PgQueuer: unused, its handlers run on its event loop)",
    )
    return p.parse_args(argv)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    main(parse_args())

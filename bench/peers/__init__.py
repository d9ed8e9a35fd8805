"""Peer task queues for the benchmark (dramatiq + Redis, PgQueuer + PostgreSQL, huey + SQLite): see README.md.

Each module has the driver side (a `Peer`: its server, bulk enqueue, what is still pending, the end-state
checks) and the worker side (`consumer()`, run by `bench.peers.worker` in each worker process). The peers'
libraries are imported only when a peer is used, so the rest of the benchmark runs without them.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

from bench.env import Json

# name -> module under bench.peers
MODULES = {"dramatiq": "dramatiq_redis", "pgqueuer": "pgqueuer_postgres", "huey": "huey_sqlite"}
PEERS = tuple(MODULES)


class Peer(ABC):
    """One peer on a fresh backend. `start` provisions it (and fails loudly if it cannot), `stop` removes it."""

    module: ClassVar[str]
    # Handler threads per worker process, where the peer runs handlers on threads; see README.md for each choice.
    threads: ClassVar[int]

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def stop(self) -> None: ...

    @property
    @abstractmethod
    def url(self) -> str:
        """What a worker process connects to."""

    def server_pids(self) -> dict[str, list[int]]:
        """Processes outside the workers that do the peer's work (its broker or database), by CPU group."""
        return {}

    @abstractmethod
    async def enqueue(self, ids: list[str]) -> str:
        """Enqueue one no-op task per id, in bulk where the peer can; returns how it was done."""

    @abstractmethod
    async def pending(self) -> int:
        """Tasks the backend has not recorded as finished (queued, in flight or unacknowledged)."""

    @abstractmethod
    async def verify(self, total: int) -> None:
        """The backend's own end state: every task finished once, nothing pending, failed or dead-lettered."""

    @abstractmethod
    def describe(self) -> Json:
        """Versions, settings and concurrency, for the results."""


def load(name: str, workdir: Path) -> Peer:
    module = importlib.import_module(f"bench.peers.{MODULES[name]}")
    peer: Peer = module.PEER(workdir)
    return peer

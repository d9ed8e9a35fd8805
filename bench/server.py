"""Real `tasques serve` processes on a fresh store each, and what each store needs to be set up and torn down."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import aiohttp

from bench.env import Elasticsearch
from tests.process import ServerProcess, delete_es_prefix, es_server_settings

STORES = ("sqlite", "elasticsearch")


class Store:
    """One fresh store: a new SQLite file, or a new index prefix on the Elasticsearch node."""

    def __init__(self, kind: str, workdir: Path, name: str, es: Elasticsearch | None) -> None:
        if kind not in STORES:
            raise ValueError(f"unknown store {kind!r}")
        if kind == "elasticsearch" and es is None:
            raise ValueError("the elasticsearch store needs a node")
        self.kind = kind
        self.name = name
        self.es = es
        self.workdir = workdir
        self.sqlite_path = workdir / f"{name}.db"
        self.es_prefix = f"bench-{name}-{uuid.uuid4().hex[:8]}".lower()

    @property
    def settings(self) -> dict[str, str]:
        if self.kind == "sqlite":
            return {"TASQUES_STORE_KIND": "sqlite", "TASQUES_STORE_SQLITE_PATH": str(self.sqlite_path)}
        assert self.es is not None
        return es_server_settings(self.es.url, self.es_prefix)

    @property
    def es_tasks_index(self) -> str:
        return f"{self.es_prefix}-tasks"

    async def destroy(self) -> None:
        """Delete what the store holds, so a long run does not fill the disk or the node's heap."""
        if self.kind == "sqlite":
            remove_sqlite_files(self.sqlite_path)
            return
        assert self.es is not None
        await delete_es_prefix(self.es.url, self.es_prefix)


def remove_sqlite_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


async def refresh_index(url: str, index: str) -> None:
    async with aiohttp.ClientSession() as session, session.post(f"{url}/{index}/_refresh") as resp:
        body = await resp.read()
        if resp.status != 200:
            raise RuntimeError(f"refresh of {index} answered {resp.status}: {body[:300]!r}")


class Server(ServerProcess):
    """`python -m tasques.cli serve` on `store`, started and stopped synchronously (it is not what is timed).

    Log level WARNING and no access log, so logging costs the measured server nothing."""

    def __init__(self, store: Store, log_path: Path, extra: dict[str, str] | None = None) -> None:
        super().__init__({**store.settings, **(extra or {})}, log_path, cli_args=["--log-level", "WARNING"])
        self.store = store

    @property
    def pid(self) -> int:
        pid = super().pid
        if pid is None:
            raise RuntimeError("the server is not running")
        return pid

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)

"""Real `tasques serve` processes on a fresh store each, and what each store needs to be set up and torn down."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from types import TracebackType

import aiohttp

from bench.env import REPO, Elasticsearch

STORES = ("sqlite", "elasticsearch")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


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
        return {
            "TASQUES_STORE_KIND": "elasticsearch",
            "TASQUES_STORE_ELASTICSEARCH_ADDRESSES": f"[{self.es.url}]",
            "TASQUES_STORE_ELASTICSEARCH_INDEX_PREFIX": self.es_prefix,
            # One node: replicas could never be assigned.
            "TASQUES_STORE_ELASTICSEARCH_REPLICAS": "0",
        }

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


async def delete_es_prefix(url: str, prefix: str) -> None:
    """Delete the indices and index templates under `prefix`, by name (clusters may refuse wildcard deletes)."""
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}/_cat/indices/{prefix}-*?h=index&format=json&expand_wildcards=all") as resp:
            indices = [row["index"] for row in await resp.json()] if resp.status == 200 else []
        async with session.get(f"{url}/_index_template/{prefix}-*") as resp:
            templates = (
                [t["name"] for t in (await resp.json()).get("index_templates", [])] if resp.status == 200 else []
            )
        if indices:
            async with session.delete(f"{url}/{','.join(indices)}?ignore_unavailable=true") as resp:
                await resp.read()
        for name in templates:
            async with session.delete(f"{url}/_index_template/{name}") as resp:
                await resp.read()


async def refresh_index(url: str, index: str) -> None:
    async with aiohttp.ClientSession() as session, session.post(f"{url}/{index}/_refresh") as resp:
        body = await resp.read()
        if resp.status != 200:
            raise RuntimeError(f"refresh of {index} answered {resp.status}: {body[:300]!r}")


class Server:
    """`python -m tasques.cli serve` on `store`, started and stopped synchronously (it is not what is timed)."""

    def __init__(self, store: Store, log_path: Path, extra: dict[str, str] | None = None) -> None:
        self.store = store
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log_path = log_path
        self._extra = extra or {}
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("the server is not running")
        return self._proc.pid

    def start(self, timeout: float = 60.0) -> Server:
        # No TASQUES_* from the caller's environment leaks into the measured server.
        env = {k: v for k, v in os.environ.items() if not k.startswith("TASQUES_")}
        env.update(self.store.settings)
        env.update(self._extra)
        env["TASQUES_SERVER_BIND_ADDRESS"] = f"127.0.0.1:{self.port}"
        with self._log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "tasques.cli", "--log-level", "WARNING", "serve"],
                env=env,
                cwd=REPO,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"server exited {self._proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server did not answer /health within {timeout}s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        return self._log_path.read_text(errors="replace")[-chars:] if self._log_path.exists() else ""

    def stop(self) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

"""dramatiq with Redis: its `RedisBroker` and default middleware, a `dramatiq.Worker` of 8 threads per process.

Redis keeps a queue's messages in the hash `<namespace>:<queue>.msgs` until they are acknowledged, so that
hash is what is still pending; retried messages wait in the delay queue (`.DQ`), dead ones in `.XQ`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from importlib import metadata
from typing import Any

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker

from bench.env import Json, check
from bench.peers import Peer
from bench.peers.servers import Redis

QUEUE = "bench"
NAMESPACE = "dramatiq"
KEYS = {k: f"{NAMESPACE}:{QUEUE}{k}" for k in (".msgs", ".DQ.msgs", ".XQ")}


def _broker(url: str) -> RedisBroker:
    return RedisBroker(url=url, namespace=NAMESPACE)  # type: ignore[no-untyped-call]


def _declare(broker: RedisBroker, record: Callable[[str], None]) -> Any:
    @dramatiq.actor(actor_name="noop", queue_name=QUEUE, broker=broker)
    def noop(task_id: str) -> None:
        record(task_id)

    return noop


class _Consumer:
    def __init__(self, url: str, threads: int, record: Callable[[str], None]) -> None:
        broker = _broker(url)
        _declare(broker, record)
        self.worker = dramatiq.Worker(broker, worker_threads=threads)

    def start(self) -> None:
        self.worker.start()

    def stop(self) -> None:
        self.worker.stop()


def consumer(url: str, threads: int, record: Callable[[str], None]) -> _Consumer:
    return _Consumer(url, threads, record)


class Dramatiq(Peer):
    module = "dramatiq_redis"
    threads = 8  # dramatiq's default (`dramatiq --threads`); 4 was about a quarter slower here

    async def start(self) -> None:
        self.redis = Redis(self.workdir / "redis.log")
        await asyncio.to_thread(self.redis.start)
        self.client = redis.Redis.from_url(self.redis.url)
        self.actor = _declare(_broker(self.redis.url), lambda _: None)

    async def stop(self) -> None:
        if hasattr(self, "client"):
            self.client.close()
        if hasattr(self, "redis"):
            await asyncio.to_thread(self.redis.stop)

    @property
    def url(self) -> str:
        return self.redis.url

    def server_pids(self) -> dict[str, list[int]]:
        return {"redis": [self.redis.pid]}

    async def enqueue(self, ids: list[str]) -> str:
        def send() -> None:
            for task_id in ids:
                self.actor.send(task_id)

        await asyncio.to_thread(send)
        return "one `actor.send` per task (dramatiq has no bulk enqueue)"

    async def pending(self) -> int:
        return int(await asyncio.to_thread(self.client.hlen, KEYS[".msgs"]))

    async def verify(self, total: int) -> None:
        sizes = await asyncio.to_thread(
            lambda: (
                self.client.hlen(KEYS[".msgs"]),
                self.client.hlen(KEYS[".DQ.msgs"]),
                self.client.zcard(KEYS[".XQ"]),
            )
        )
        check(sizes == (0, 0, 0), f"dramatiq: unacknowledged, delayed (retried), dead messages left: {sizes}")

    def describe(self) -> Json:
        return {
            "label": f"dramatiq {metadata.version('dramatiq')} + Redis {self.redis.version}",
            "versions": {
                "dramatiq": metadata.version("dramatiq"),
                "redis-py": metadata.version("redis"),
                "redis-server": self.redis.version,
            },
            "settings": f"RedisBroker, default middleware; Redis {self.redis.settings()}",
            "concurrency": f"dramatiq.Worker with {self.threads} threads per process, prefetch {2 * self.threads}",
        }


PEER = Dramatiq

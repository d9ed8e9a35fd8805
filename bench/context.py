"""What every scenario gets: sizes, a scratch directory, the Elasticsearch node, and small helpers."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.env import CpuMeter, Elasticsearch, Json
from bench.params import Params
from bench.server import Server, Store


@dataclass
class Context:
    params: Params
    workdir: Path
    es: Elasticsearch | None
    verbose: bool = True
    # --py-spy: profile the server during the end-to-end runs, collapsed stacks written here
    profile_dir: Path | None = None
    stamp: str = "run"

    def log(self, message: str) -> None:
        if self.verbose:
            print(f"  {message}", flush=True)

    def log_path(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def store(self, kind: str, name: str) -> Store:
        return Store(kind, self.workdir, name, self.es)

    async def start_server(self, store: Store, name: str, extra: dict[str, str] | None = None) -> Server:
        """`extra`: more `TASQUES_*` settings for this server."""
        server = Server(store, self.log_path(f"server-{name}"), extra)
        await asyncio.to_thread(server.start)
        return server

    def meter(self, kind: str, server: Server | None, workers: Iterable[int] = ()) -> CpuMeter:
        """CPU of the server, the worker processes and (on that store) the Elasticsearch node, and the driver."""
        groups: dict[str, list[int | None]] = {
            "server": [server.pid] if server is not None else [],
            "workers": list(workers),
        }
        if kind == "elasticsearch" and self.es is not None:
            groups["elasticsearch"] = [self.es.pid]
        return CpuMeter(groups)


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100), linearly interpolated between closest ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    lo, hi = math.floor(rank), math.ceil(rank)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


def distribution_ms(seconds: Sequence[float]) -> Json:
    ms = [s * 1000 for s in seconds]
    return {
        "count": len(ms),
        "p50_ms": round(percentile(ms, 50), 2),
        "p95_ms": round(percentile(ms, 95), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "max_ms": round(max(ms), 2) if ms else math.nan,
    }


def per_task(cpu: Json, tasks: int) -> Json:
    """CPU milliseconds per task of each measured group: the cost, less sensitive to a busy machine than time."""
    if tasks <= 0:
        return {}
    return {f"{name}_cpu_ms_per_task": round(sec * 1000 / tasks, 3) for name, sec in cpu["cpu_s"].items()}

"""The machine under the benchmark: facts about it, the Elasticsearch node, and CPU accounting from /proc."""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

Json = dict[str, Any]

REPO = Path(__file__).resolve().parent.parent
ES_SCRIPT = REPO / "scripts" / "elasticsearch"
_CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchFailure(Exception):
    """A scenario could not vouch for what it measured (lost, duplicated or unfinished tasks, bad responses)."""


def check(condition: bool, message: str) -> None:
    """Verification that survives `python -O` (unlike assert)."""
    if not condition:
        raise BenchFailure(message)


# -- Elasticsearch -------------------------------------------------------------------------------------------


@dataclass
class Elasticsearch:
    url: str
    version: str
    pid: int | None  # the node's JVM, for CPU accounting (None for a cluster the bench did not find locally)
    started_here: bool


def _script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ES_SCRIPT), *args], capture_output=True, text=True, check=False)


def provision_elasticsearch(url: str | None) -> Elasticsearch:
    """`url` if given, else the node of `scripts/elasticsearch start` (reused if already running)."""
    started_here = False
    if url is None:
        already_running = _script("url").returncode == 0
        proc = _script("start")
        if proc.returncode != 0:
            raise RuntimeError(f"`scripts/elasticsearch start` exited {proc.returncode}:\n{proc.stderr[-4000:]}")
        url = proc.stdout.strip().splitlines()[-1]
        started_here = not already_running
    url = url.rstrip("/")
    # Not `GET /`: some distributions (the integ-test one) refuse it.
    with urllib.request.urlopen(f"{url}/_nodes/_local?filter_path=nodes.*.version", timeout=10) as resp:
        version = ", ".join(sorted({str(n["version"]) for n in json.load(resp)["nodes"].values()}))
    return Elasticsearch(url=url, version=version, pid=_local_es_pid(url), started_here=started_here)


def stop_elasticsearch(es: Elasticsearch) -> None:
    """Stop the node only if this run started it (a node that was running already belongs to someone else)."""
    if es.started_here:
        _script("stop")


def _local_es_pid(url: str) -> int | None:
    """The JVM of the node `scripts/elasticsearch` runs, if `url` is that node (same run-dir rules as the script)."""
    if os.environ.get("TASQUES_ES_RUN_DIR"):
        run_dir = Path(os.environ["TASQUES_ES_RUN_DIR"])
    elif os.getuid() == 0:
        run_dir = Path("/var/cache/tasques/es-run")
    else:
        run_dir = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tasques" / "es-run"
    try:
        if (run_dir / "url").read_text().strip().rstrip("/") != url:
            return None
        pid = int((run_dir / "es.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if process_cpu_seconds(pid) is not None else None


# -- machine facts -------------------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _git(*args: str) -> str | None:
    proc = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def machine_info(es_version: str | None) -> Json:
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "cores": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "sqlite": sqlite3.sqlite_version,
        "elasticsearch": es_version,
        "packages": {d: _version(d) for d in ("aiohttp", "pydantic", "pydantic-core", "elasticsearch")},
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(status) if status is not None else None,
        "loadavg_at_start": os.getloadavg(),
        "executable": sys.executable,
    }


# -- CPU accounting ------------------------------------------------------------------------------------------


def process_cpu_seconds(pid: int) -> float | None:
    """user + system CPU seconds of a process (all its threads), or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # the command name may hold spaces; skip past it
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, summed over every core."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # guest time is already counted in user
    return (total - idle) / _CLK_TCK, total / _CLK_TCK


class CpuMeter:
    """CPU seconds spent by named groups of processes over an interval, and by everything else on the machine.

    `others_s` is the machine's busy time minus the measured groups': other people's work on a shared
    machine (the benchmark cannot stop it, but it says how much there was).
    """

    def __init__(self, groups: Mapping[str, Iterable[int | None]]) -> None:
        self._groups = {name: [p for p in pids if p is not None] for name, pids in groups.items()}
        self._start: dict[str, float] = {}
        self._machine: tuple[float, float] = (0.0, 0.0)
        self._t0 = 0.0

    def _sample(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, pids in self._groups.items():
            out[name] = sum(process_cpu_seconds(p) or 0.0 for p in pids)
        out["driver"] = sum(os.times()[:2])
        return out

    def start(self) -> CpuMeter:
        self._start = self._sample()
        self._machine = machine_cpu_seconds()
        self._t0 = time.monotonic()
        return self

    def stop(self) -> Json:
        end = self._sample()
        busy, total = machine_cpu_seconds()
        wall = time.monotonic() - self._t0
        used = {name: round(end[name] - self._start.get(name, 0.0), 3) for name in end}
        machine_busy = busy - self._machine[0]
        return {
            "wall_s": round(wall, 3),
            "cpu_s": used,
            "machine_busy_s": round(machine_busy, 3),
            "machine_capacity_s": round(total - self._machine[1], 3),
            "others_s": round(max(0.0, machine_busy - sum(used.values())), 3),
        }

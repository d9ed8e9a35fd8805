"""Optional sampling profiles of the server under load (`--py-spy`): collapsed stacks and what they add up to."""

from __future__ import annotations

import asyncio
import shutil
import signal
import sys
from collections import Counter
from pathlib import Path

from bench.env import Json


def py_spy_path() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


class PySpy:
    """`py-spy record` of one process, in the collapsed-stack ("raw") format, until `stop()`."""

    def __init__(self, pid: int, output: Path, rate: int = 100) -> None:
        self.pid = pid
        self.output = output
        self.rate = rate
        self._proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        exe = py_spy_path()
        if exe is None:
            raise RuntimeError("py-spy is not installed (pip install py-spy)")
        self._proc = await asyncio.create_subprocess_exec(
            exe,
            "record",
            "--pid",
            str(self.pid),
            "--output",
            str(self.output),
            "--format",
            "raw",
            "--rate",
            str(self.rate),
            "--threads",
            "--nonblocking",  # never pause the server: a little less exact, no slowdown
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )

    async def stop(self) -> Json:
        if self._proc is None:
            return {}
        if self._proc.returncode is None:
            self._proc.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(self._proc.wait(), 30)
        except TimeoutError:
            self._proc.kill()
            await self._proc.wait()
        return summarize(self.output) if self.output.exists() else {}


def _frame_name(frame: str) -> str:
    # py-spy frames look like "function (path/to/module.py:123)": keep the function and the file's tail.
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path, _, _ = where.rpartition(":")
    parts = Path(path).parts
    tail = "/".join(parts[-2:]) if parts else path
    return f"{name} ({tail})"


def summarize(path: Path, top: int = 25) -> Json:
    """Samples per thread, and the functions with the most self and inclusive samples on the busiest thread."""
    per_thread: Counter[str] = Counter()
    stacks: list[tuple[str, list[str], int]] = []
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = stack.split(";")
        thread, frames = frames[0], frames[1:]
        count = int(count_text)
        per_thread[thread] += count
        stacks.append((thread, frames, count))
    total = sum(per_thread.values())
    if not total:
        return {"samples": 0}
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for _thread, frames, count in stacks:
        if not frames:
            continue
        self_time[_frame_name(frames[-1])] += count
        for name in {_frame_name(f) for f in frames}:
            inclusive[name] += count

    def pct(counter: Counter[str]) -> list[list[object]]:
        return [[name, round(100 * n / total, 1)] for name, n in counter.most_common(top)]

    return {
        "file": path.name,
        "samples": total,
        "threads_pct": pct(per_thread),
        "self_pct": pct(self_time),
        "inclusive_pct": pct(inclusive),
    }

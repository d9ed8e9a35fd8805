"""Handlers for the worker CLI tests: `--handlers tests.worker.handlers_example[:ATTR]`.

Each handler reports `{"started": True, ...}` first, so a test can see from the server that it is running.
"""

from __future__ import annotations

import asyncio

from tasques.worker import Handler, TaskContext
from tasques.worker.client import JsonDict


async def quick(ctx: TaskContext) -> JsonDict:
    """Sleeps `args.seconds` (default 0) and succeeds."""
    seconds = float((ctx.task.args or {}).get("seconds", 0))
    await ctx.report({"started": True})
    await asyncio.sleep(seconds)
    return {"slept": seconds, "worker_id": ctx.worker_id}


async def slow(ctx: TaskContext) -> JsonDict:
    """Runs for a minute: long enough to still be running when a test stops the worker."""
    await ctx.report({"started": True})
    await asyncio.sleep(60)
    return {"finished": True}


async def slow_first_attempt(ctx: TaskContext) -> JsonDict:
    """Hangs on the first attempt (so the worker can be killed mid-task) and succeeds on any later one."""
    await ctx.report({"started": True, "attempted": ctx.task.attempted})
    if ctx.task.attempted == 1:
        await asyncio.sleep(60)
    return {"attempted": ctx.task.attempted, "worker_id": ctx.worker_id}


HANDLERS: dict[str, Handler] = {"quick": quick, "slow": slow}
CRASH_HANDLERS: dict[str, Handler] = {"slow_first_attempt": slow_first_attempt}

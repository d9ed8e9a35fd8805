"""Running a coroutine to completion from synchronous test code, whatever loop the calling thread holds."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any


def run_async(coro: Coroutine[Any, Any, None]) -> None:
    """`asyncio.run(coro)` in a fresh thread (this one may hold Playwright's loop)."""
    failure: list[BaseException] = []

    def body() -> None:
        try:
            asyncio.run(coro)
        except BaseException as e:  # re-raised in the caller's thread
            failure.append(e)

    thread = threading.Thread(target=body, name="run-async")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]

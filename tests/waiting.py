"""Waiting for something a real server shows a moment later, in the synchronous tests (the browser's, Prometheus')."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(
    what: str, probe: Callable[[], T], until: Callable[[T], bool] = bool, within: float = 15.0, every: float = 0.1
) -> T:
    """Poll `probe` until `until` holds for its answer; after `within` seconds fail showing the last answer."""
    deadline = time.monotonic() + within
    while True:
        got = probe()
        if until(got):
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within:.0f}s; last answer: {got!r}")
        time.sleep(every)

"""Bounded label values: whatever the traffic, the series count stays bounded."""

from __future__ import annotations

# The queue label of every queue past the cap.
OTHER_QUEUE = "_other"
# HTTP methods kept as they are; any other method string is "other".
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class QueueLabels:
    """The first `limit` distinct queues a server sees keep their name as a label; later ones are `_other`.

    One instance per server, shared by every metric, so a queue has the same label everywhere."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._known: set[str] = set()

    def __call__(self, queue: str) -> str:
        if queue in self._known:
            return queue
        if len(self._known) < self._limit:
            self._known.add(queue)
            return queue
        return OTHER_QUEUE


def status_class(status: int | None) -> str:
    """`2xx` for 200..299 and so on; "error" when there was no response (or no valid status)."""
    if status is None or not 100 <= status <= 599:
        return "error"
    return f"{status // 100}xx"


def method_label(method: str) -> str:
    return method if method in METHODS else "other"

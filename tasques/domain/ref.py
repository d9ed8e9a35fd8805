"""How the server addresses a queue: queue names are per project, so a queue is (project, name)."""

from __future__ import annotations

from typing import NamedTuple


class QueueRef(NamedTuple):
    project: str
    queue: str

"""Weighted claims: how one claim's `amount` is split among queues by their weights, fairly over time.

Each queue's share of a claim is `amount * weight / total`. Its whole part is its seats; the fractions carry
over in a per-server credit kept per (project, weights), and the remaining seats go to the largest credits
(ties: the earlier queue, in name order), each seat taken costing its queue `total`. That is the largest-remainder
method with the remainders remembered, and for `amount = 1` it is exactly the smooth weighted round robin
(nginx's): over N claims each queue gets its share to within one seat, so no queue with a weight is starved.

Pure and synchronous; `TaskService.claim` (tasks.py) does the claiming, one store claim per queue with seats.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

# Credits kept at most (one per project and set of weights in use): the least recently used go past this.
MAX_SCHEDULES = 10_000

_Key = tuple[str, tuple[tuple[str, int], ...]]


class WeightedSplit:
    def __init__(self) -> None:
        self._credits: OrderedDict[_Key, list[int]] = OrderedDict()

    def split(self, project: str, weights: Mapping[str, int], amount: int) -> dict[str, int]:
        """Seats per queue (only queues with at least one), summing to `amount`. Weights must be positive."""
        items = tuple(sorted(weights.items()))
        if not items or amount <= 0:
            return {}
        key = (project, items)
        credit = self._credits.pop(key, None) or [0] * len(items)
        self._credits[key] = credit  # most recently used last
        while len(self._credits) > MAX_SCHEDULES:
            self._credits.popitem(last=False)
        total = sum(w for _, w in items)
        seats = [0] * len(items)
        for i, (_, w) in enumerate(items):
            credit[i] += amount * w
            seats[i] = max(0, credit[i] // total)
            credit[i] -= seats[i] * total
        left = amount - sum(seats)
        # Credits stay within (-total, total) in practice; should they not, the surplus goes from the most seated.
        while left < 0:
            i = max(range(len(items)), key=lambda j: seats[j])
            seats[i] -= 1
            credit[i] += total
            left += 1
        for _ in range(left):
            i = max(range(len(items)), key=lambda j: (credit[j], -j))
            seats[i] += 1
            credit[i] -= total
        return {q: n for (q, _), n in zip(items, seats, strict=True) if n}

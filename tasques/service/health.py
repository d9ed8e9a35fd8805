"""Readiness: whether this server can serve requests now, i.e. whether its store answers.

Liveness (`/health`) never touches the store: a server whose store is down is alive and must not be
restarted for it. Readiness (`/ready`) asks the store one cheap question with a short timeout, so a load
balancer or Kubernetes stops sending traffic while the store is away and resumes once it answers.
"""

from __future__ import annotations

from datetime import timedelta

from tasques.store.base import Store


class Readiness:
    def __init__(self, store: Store, timeout: timedelta) -> None:
        self._store = store
        self._timeout = timeout

    @property
    def store_kind(self) -> str:
        return self._store.kind

    async def check(self) -> None:
        """Return if the store answers within the timeout; raise `StoreUnavailable` otherwise."""
        await self._store.ping(self._timeout)

"""`python -m bench.auth_cost`: what `Authenticator.authenticate` costs per request, with a `tq_` token and auth off.

The token and its project come from memory (the server reads them from the store once per `token_cache_ttl`),
so this is the per-request work only: parsing, the cache, the secret's hash, networks, the rate limiter."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from multidict import CIMultiDict

from tasques.api.access.authenticator import Authenticator
from tasques.config import AuthConfig
from tasques.domain.project import ApiToken, Project, Role
from tasques.domain.task import Metadata
from tasques.service import tokens

CALLS = 100_000


class _Records:
    """One project and one worker token, as a store would hold them."""

    def __init__(self) -> None:
        now = datetime.now(UTC)
        meta = Metadata(created_at=now, modified_at=now)
        self.issued = tokens.new_token()
        self.token = ApiToken(
            id=self.issued.id, project="bench", role=Role.WORKER, secret_hash=self.issued.secret_hash, metadata=meta
        )
        self.project = Project(name="bench", max_outstanding_tasks=None, metadata=meta)

    async def get_token(self, token_id: str) -> ApiToken:
        return self.token

    async def get_project(self, name: str) -> Project:
        return self.project


async def per_request_us(authenticator: Authenticator, headers: CIMultiDict[str], calls: int = CALLS) -> float:
    for _ in range(1000):  # warm the caches
        await authenticator.authenticate(headers, "127.0.0.1", "/tasques/claims")
    started = time.perf_counter()
    for _ in range(calls):
        await authenticator.authenticate(headers, "127.0.0.1", "/tasques/claims")
    return (time.perf_counter() - started) / calls * 1e6


async def main() -> None:
    records = _Records()
    headers = CIMultiDict({"Authorization": f"Bearer {records.issued.plaintext}"})
    # The rate limit is set out of reach: this measures its bookkeeping, not its refusals.
    on = AuthConfig(enabled=True, admin_token="a" * 43, rate_per_second=1e6, burst=1_000_000)
    for name, config in (("off", AuthConfig()), ("token", on)):
        print(f"{name}: {await per_request_us(Authenticator(config, records), headers):.1f} µs per request")


if __name__ == "__main__":
    asyncio.run(main())

"""Project and token use cases: what admins do, and the quota lookups task creation makes.

A token is shown once, when issued (`tasques.service.tokens`); the store keeps its id and a hash of its secret.
Revocation is a write of `revoked_at`; the authenticator caches token lookups for `auth.token_cache_ttl`, so a
revoked token stops working on every server within that time (tokens are read with realtime gets on
Elasticsearch and from the database on SQLite: a write is seen at once). Project records (quotas and rates,
for the authenticator too) are cached as long here, and a change made through this server applies at once.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from tasques.domain.errors import AlreadyExists, FieldProblem, InvalidInput, NotFound
from tasques.domain.networks import NetworkError, parse_networks
from tasques.domain.project import ApiToken, Project, Role
from tasques.domain.task import Metadata
from tasques.service.clock import Clock
from tasques.service.conflicts import retry_conflicts
from tasques.service.tokens import new_token
from tasques.service.ttl_cache import TtlCache
from tasques.store.base import Store

# Project records remembered at most (changes made through this server apply here at once).
MAX_CACHED = 10_000
MISSING_TTL = 1.0


@dataclass(frozen=True)
class IssuedToken:
    """A token as issued: `text` is the only time anyone sees the secret."""

    text: str
    token: ApiToken


@dataclass(frozen=True)
class ProjectSettings:
    # The quota of a project created without one, and of a project with no record (named by a JWT).
    default_max_outstanding_tasks: int | None = 1000
    # Whether projects exist at all: without auth there is only `default`, without a quota.
    enabled: bool = False
    token_cache_ttl: timedelta = timedelta(seconds=2)


class ProjectService:
    def __init__(self, store: Store, clock: Clock, settings: ProjectSettings) -> None:
        self._store = store
        self._clock = clock
        self._settings = settings
        ttl = settings.token_cache_ttl.total_seconds()
        # Project records as quotas and rate limits read them: one store read per project and TTL, a missing
        # project asked again within a second (another server may just have created it).
        self._projects: TtlCache[Project] = TtlCache(ttl, min(ttl, MISSING_TTL), time.monotonic, MAX_CACHED)

    # Projects
    async def create(
        self,
        name: str,
        max_outstanding_tasks: int | None = None,
        *,
        unlimited: bool = False,
        rate_per_second: float | None = None,
    ) -> Project:
        """A new project; its quota is the default unless given (`unlimited`: none)."""
        now = self._clock()
        quota = None if unlimited else (max_outstanding_tasks or self._settings.default_max_outstanding_tasks)
        project = Project(
            name=name,
            max_outstanding_tasks=quota,
            rate_per_second=rate_per_second,
            metadata=Metadata(created_at=now, modified_at=now),
        )
        created = await self._store.insert_project(project)
        self._projects.invalidate(name)
        return created

    async def ensure(self, name: str) -> None:
        """Create the project with the default quota unless it exists (the `default` project when auth is on)."""
        with contextlib.suppress(AlreadyExists):
            await self.create(name)

    def now(self) -> datetime:
        return self._clock()

    async def get(self, name: str) -> Project:
        return await self._store.get_project(name)

    async def get_project(self, name: str) -> Project:
        """The project's record, cached for `token_cache_ttl` (the authenticator's and the quota's lookups)."""
        return await self._projects.get(name, lambda: self._store.get_project(name))

    async def get_token(self, token_id: str) -> ApiToken:
        """The token's record, uncached: the authenticator caches tokens."""
        return await self._store.get_token(token_id)

    async def outstanding(self, name: str) -> int:
        """The project's tasks not yet done, dead or cancelled (what its quota counts)."""
        return await self._store.count_project_outstanding(name)

    async def list_all(self) -> list[Project]:
        return await self._store.list_projects()

    async def update(self, name: str, **changes: int | float | None) -> Project:
        """Change `max_outstanding_tasks` and/or `rate_per_second` (None: unlimited, or the server default)."""
        unknown = set(changes) - {"max_outstanding_tasks", "rate_per_second"}
        if unknown:
            raise ValueError(f"not project settings: {sorted(unknown)}")

        async def attempt() -> Project:
            current = await self._store.get_project(name)
            metadata = current.metadata.model_copy(update={"modified_at": self._clock()})
            changed = current.model_copy(update={**changes, "metadata": metadata})
            return await self._store.update_project(changed)

        updated = await retry_conflicts(f"project {name}", attempt)
        self._projects.invalidate(name)
        return updated

    async def quota_of(self, project: str) -> int | None:
        """The project's quota of outstanding tasks, cached like token lookups (None: unlimited)."""
        if not self._settings.enabled:
            return None
        try:
            return (await self.get_project(project)).max_outstanding_tasks
        except NotFound:
            return self._settings.default_max_outstanding_tasks

    # Tokens
    async def issue(
        self,
        project: str,
        role: Role,
        *,
        name: str | None = None,
        expires_at: datetime | None = None,
        allowed_networks: list[str] | None = None,
    ) -> IssuedToken:
        """A new token of an existing project (NotFound otherwise)."""
        await self._store.get_project(project)
        now = self._clock()
        if expires_at is not None and expires_at <= now:
            raise InvalidInput("invalid token", [FieldProblem("expires_in", "must be in the future")])
        try:
            networks = [str(n) for n in parse_networks(allowed_networks or [])]
        except NetworkError as e:
            raise InvalidInput("invalid token", [FieldProblem("allowed_networks", str(e))]) from None
        for _ in range(3):
            made = new_token()
            token = ApiToken(
                id=made.id,
                project=project,
                role=role,
                name=name,
                secret_hash=made.secret_hash,
                expires_at=expires_at,
                allowed_networks=networks,
                metadata=Metadata(created_at=now, modified_at=now),
            )
            try:
                stored = await self._store.insert_token(token)
            except AlreadyExists:
                continue  # 95 random bits: practically never
            return IssuedToken(made.plaintext, stored)
        raise AlreadyExists("could not find a free token id")

    async def tokens(self, project: str) -> list[ApiToken]:
        return await self._store.list_tokens(project)

    async def revoke(self, project: str, token_id: str) -> ApiToken:
        """Revoke a token of `project` (NotFound for another project's id). Revoking twice keeps the first time."""

        async def attempt() -> ApiToken:
            current = await self._store.get_token(token_id)
            if current.project != project:
                raise NotFound(f"no token {token_id} in project {project}")
            if current.revoked_at is not None:
                return current
            now = self._clock()
            metadata = current.metadata.model_copy(update={"modified_at": now})
            return await self._store.update_token(current.model_copy(update={"revoked_at": now, "metadata": metadata}))

        return await retry_conflicts(f"token {token_id}", attempt)

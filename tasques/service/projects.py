"""Project and token use cases: what admins do, and the lookups authentication and quotas make.

A token is shown once, when issued: `tq_<id>_<secret>`. The store keeps its id and a SHA-256 of its secret
(the secret is 256 random bits, so a slow hash would only add latency), never the secret itself.
Revocation is a write of `revoked_at`; servers cache token lookups for `token_cache_ttl`, so a revoked token
stops working everywhere within that time plus the store's visibility delay (none: tokens are read with
realtime gets on Elasticsearch and from the database on SQLite).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from tasques.domain.errors import AlreadyExists, FieldProblem, InvalidInput, NotFound
from tasques.domain.limits import DEFAULT_PROJECT
from tasques.domain.project import ApiToken, Project, Role
from tasques.domain.task import Metadata
from tasques.service.clock import Clock
from tasques.service.conflicts import retry_conflicts
from tasques.store.base import Store

TOKEN_PREFIX = "tq_"
_ID_BYTES = 12  # 16 url-safe characters
_SECRET_BYTES = 32
MAX_TOKEN_LENGTH = 128
MAX_NETWORKS = 100
# Lookups remembered at most (tokens and quotas): a flood of made-up ids cannot grow memory.
MAX_CACHED = 10_000
V = TypeVar("V")


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_token(text: str) -> tuple[str, str] | None:
    """(id, secret) of a `tq_<id>_<secret>` string, or None if it is not one."""
    if not text.startswith(TOKEN_PREFIX) or len(text) > MAX_TOKEN_LENGTH:
        return None
    token_id, sep, secret = text[len(TOKEN_PREFIX) :].partition("_")
    if not sep or not token_id or not secret or not (token_id + secret).replace("-", "").replace("_", "").isalnum():
        return None
    return token_id, secret


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)


def check_networks(networks: list[str], field: str = "allowed_networks") -> list[str]:
    """The networks in canonical form (`10.0.0.0/8`), or a 400 naming the bad one."""
    if len(networks) > MAX_NETWORKS:
        raise InvalidInput("invalid token", [FieldProblem(field, f"at most {MAX_NETWORKS} networks")])
    out = []
    for i, text in enumerate(networks):
        try:
            out.append(str(ipaddress.ip_network(text, strict=True)))
        except ValueError as e:
            raise InvalidInput("invalid token", [FieldProblem(f"{field}.{i}", str(e))]) from None
    return out


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


class _Ttl(Generic[V]):
    """A small bounded cache whose entries live `ttl` seconds of loop time (misses are cached too)."""

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._entries: OrderedDict[str, tuple[float, V]] = OrderedDict()

    def get(self, key: str) -> V | None:
        found = self._entries.get(key)
        if found is None or found[0] < asyncio.get_running_loop().time():
            return None
        return found[1]

    def put(self, key: str, value: V) -> None:
        self._entries[key] = (asyncio.get_running_loop().time() + self._ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > MAX_CACHED:
            self._entries.popitem(last=False)

    def drop(self, key: str) -> None:
        self._entries.pop(key, None)


class ProjectService:
    def __init__(self, store: Store, clock: Clock, settings: ProjectSettings) -> None:
        self._store = store
        self._clock = clock
        self._settings = settings
        ttl = settings.token_cache_ttl.total_seconds()
        self._tokens: _Ttl[ApiToken | NotFound] = _Ttl(ttl)
        self._quotas: _Ttl[tuple[int | None]] = _Ttl(ttl)

    @property
    def settings(self) -> ProjectSettings:
        return self._settings

    # Projects
    async def create(self, name: str, max_outstanding_tasks: int | None = None, *, unlimited: bool = False) -> Project:
        """A new project; its quota is the default unless given (`unlimited`: none)."""
        now = self._clock()
        quota = None if unlimited else (max_outstanding_tasks or self._settings.default_max_outstanding_tasks)
        project = Project(name=name, max_outstanding_tasks=quota, metadata=Metadata(created_at=now, modified_at=now))
        created = await self._store.insert_project(project)
        self._quotas.drop(name)
        return created

    def now(self) -> datetime:
        return self._clock()

    async def get(self, name: str) -> Project:
        return await self._store.get_project(name)

    async def outstanding(self, name: str) -> int:
        """The project's tasks not yet done, dead or cancelled (what its quota counts)."""
        return await self._store.count_project_outstanding(name)

    async def list_all(self) -> list[Project]:
        return await self._store.list_projects()

    async def set_quota(self, name: str, max_outstanding_tasks: int | None) -> Project:
        async def attempt() -> Project:
            current = await self._store.get_project(name)
            metadata = current.metadata.model_copy(update={"modified_at": self._clock()})
            changed = current.model_copy(update={"max_outstanding_tasks": max_outstanding_tasks, "metadata": metadata})
            return await self._store.update_project(changed)

        updated = await retry_conflicts(f"project {name}", attempt)
        self._quotas.drop(name)
        return updated

    async def quota_of(self, project: str) -> int | None:
        """The project's quota of outstanding tasks, cached like token lookups (None: unlimited)."""
        if not self._settings.enabled:
            return None
        cached = self._quotas.get(project)
        if cached is not None:
            return cached[0]
        try:
            quota = (await self._store.get_project(project)).max_outstanding_tasks
        except NotFound:
            quota = self._settings.default_max_outstanding_tasks
        self._quotas.put(project, (quota,))
        return quota

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
        """A new token of an existing project (NotFound otherwise; admin tokens may belong to `default`)."""
        if project != DEFAULT_PROJECT or role is not Role.ADMIN:
            await self._store.get_project(project)
        now = self._clock()
        if expires_at is not None and expires_at <= now:
            raise InvalidInput("invalid token", [FieldProblem("expires_in", "must be in the future")])
        networks = check_networks(allowed_networks or [])
        for _ in range(3):
            token_id = secrets.token_urlsafe(_ID_BYTES).replace("_", "-")  # '_' separates the parts
            secret = secrets.token_urlsafe(_SECRET_BYTES)
            token = ApiToken(
                id=token_id,
                project=project,
                role=role,
                name=name,
                secret_hash=hash_secret(secret),
                expires_at=expires_at,
                allowed_networks=networks,
                metadata=Metadata(created_at=now, modified_at=now),
            )
            try:
                stored = await self._store.insert_token(token)
            except AlreadyExists:
                continue  # 96 random bits: practically never
            return IssuedToken(f"{TOKEN_PREFIX}{token_id}_{secret}", stored)
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

        revoked = await retry_conflicts(f"token {token_id}", attempt)
        self._tokens.drop(token_id)
        return revoked

    async def lookup(self, token_id: str) -> ApiToken:
        """The token with that id, cached for `token_cache_ttl` (NotFound, cached as briefly)."""
        cached = self._tokens.get(token_id)
        if isinstance(cached, NotFound):
            raise cached
        if cached is not None:
            return cached
        try:
            token = await self._store.get_token(token_id)
        except NotFound as e:
            self._tokens.put(token_id, e)
            raise
        self._tokens.put(token_id, token)
        return token

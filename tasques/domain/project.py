"""Projects (tenants), their roles and API tokens.

A project owns every task, recurring task, queue setting and attempt record made in it; nothing crosses
projects. A token belongs to one project and carries one role; only a hash of its secret is stored.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from tasques.domain.task import Metadata


class Role(StrEnum):
    """What a caller may do, each role including the ones below it in `ROLE_RANK` where it says so."""

    ADMIN = "admin"  # projects, tokens and everything else, in every project
    PRODUCER = "producer"  # create, cancel, run-now, read tasks and recurring tasks, queue settings
    WORKER = "worker"  # claim, report, done, failed, unclaim, read
    VIEWER = "viewer"  # read only


# The roles that may call a route that requires `key`: admin may do everything, anyone may read.
ALLOWED: dict[Role, frozenset[Role]] = {
    Role.ADMIN: frozenset({Role.ADMIN}),
    Role.PRODUCER: frozenset({Role.ADMIN, Role.PRODUCER}),
    Role.WORKER: frozenset({Role.ADMIN, Role.WORKER}),
    Role.VIEWER: frozenset(Role),
}


def may(role: Role, required: Role) -> bool:
    """Whether a caller with `role` may call a route that requires `required`."""
    return role in ALLOWED[required]


class Project(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="the project's name, part of every key of its records")
    # None: no quota (the `default` project of a server without auth).
    max_outstanding_tasks: int | None = Field(description="most tasks not yet done, dead or cancelled")
    rate_per_second: float | None = Field(None, description="each token's request rate; the server default if None")
    metadata: Metadata


class ApiToken(BaseModel):
    """A project's token. The secret is never stored: `secret_hash` is SHA-256 of it (secrets are random
    256-bit values, so a slow hash would add nothing but latency)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(description="public id of the token, the first part of the token string")
    project: str
    role: Role
    name: str | None = Field(None, description="what the token is for")
    secret_hash: str
    expires_at: datetime | None = None
    allowed_networks: list[str] = Field(default_factory=list, description="CIDR networks; empty: anywhere")
    revoked_at: datetime | None = None
    metadata: Metadata

    def live_at(self, at: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or at < self.expires_at)

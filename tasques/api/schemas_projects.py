"""Request and response bodies of the project and token routes (admin only)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tasques.domain.duration import PositiveDuration
from tasques.domain.limits import ProjectName
from tasques.domain.project import ApiToken, Project, Role

MAX_QUOTA = 100_000_000
Quota = Annotated[int, Field(ge=1, le=MAX_QUOTA)]
Rate = Annotated[float, Field(gt=0, le=1_000_000)]
# A network as CIDR text (`10.0.0.0/8`, `2001:db8::/32`); checked strictly by the service.
Network = Annotated[str, Field(min_length=2, max_length=49)]


class _Strict(BaseModel):
    # Admin bodies refuse unknown fields: a misspelt `max_outstanding_tasks` must not silently mean "default".
    model_config = ConfigDict(extra="forbid")


class NewProject(_Strict):
    name: ProjectName = Field(description="lower-case letters, digits, '-' and '_'; part of every key of its records")
    max_outstanding_tasks: Quota | None = Field(
        None, description="most tasks not yet done, dead or cancelled; the server default (1,000) if absent"
    )
    unlimited: bool = Field(False, description="no quota at all")
    rate_per_second: Rate | None = Field(None, description="each token's requests a second; the server's if absent")

    @model_validator(mode="after")
    def _one_quota(self) -> NewProject:
        if self.unlimited and self.max_outstanding_tasks is not None:
            raise ValueError("give max_outstanding_tasks or unlimited, not both")
        return self


class ProjectUpdate(_Strict):
    """Only the fields given change."""

    max_outstanding_tasks: Quota | None = Field(None, description="the new quota; null: unlimited")
    rate_per_second: Rate | None = Field(None, description="each token's requests a second; null: the server's")


class ProjectInfo(BaseModel):
    name: str
    max_outstanding_tasks: int | None = Field(description="the quota; absent: unlimited")
    rate_per_second: float | None = Field(None, description="each token's request rate; absent: the server's")
    outstanding_tasks: int | None = Field(None, description="tasks not yet done, dead or cancelled (GET only)")
    created_at: datetime
    modified_at: datetime

    @classmethod
    def of(cls, project: Project, outstanding: int | None = None) -> ProjectInfo:
        return cls(
            name=project.name,
            max_outstanding_tasks=project.max_outstanding_tasks,
            rate_per_second=project.rate_per_second,
            outstanding_tasks=outstanding,
            created_at=project.metadata.created_at,
            modified_at=project.metadata.modified_at,
        )


class ProjectList(BaseModel):
    projects: list[ProjectInfo]


class NewToken(_Strict):
    role: Role = Field(description="admin, producer, worker or viewer")
    name: str | None = Field(None, min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$",
                             description="what the token is for")  # fmt: skip
    expires_in: PositiveDuration | None = Field(None, description="a Go-style duration; never expires if absent")
    allowed_networks: list[Network] = Field(
        default_factory=list, max_length=100, description="CIDR networks the token may be used from; empty: anywhere"
    )


class TokenInfo(BaseModel):
    """A token without its secret."""

    id: str
    project: str
    role: Role
    name: str | None = None
    expires_at: datetime | None = None
    allowed_networks: list[str]
    revoked_at: datetime | None = None
    created_at: datetime

    @classmethod
    def of(cls, token: ApiToken) -> TokenInfo:
        return cls(
            id=token.id,
            project=token.project,
            role=token.role,
            name=token.name,
            expires_at=token.expires_at,
            allowed_networks=token.allowed_networks,
            revoked_at=token.revoked_at,
            created_at=token.metadata.created_at,
        )


class IssuedTokenBody(TokenInfo):
    token: str = Field(description="the token: shown this once, store it now (only its hash is kept)")


class TokenList(BaseModel):
    tokens: list[TokenInfo]

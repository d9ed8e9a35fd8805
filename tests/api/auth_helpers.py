"""Helpers of the auth API tests: a server with auth on, projects and tokens made through the admin API."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tasques.domain.project import Role
from tests.api.conftest import Client, MakeClient, call

ADMIN = "admin-token-for-the-tests-0123456789abcdef"
JWT_SECRET = "jwt-secret-for-the-tests-0123456789abcdef"
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def auth_overrides(**auth: Any) -> dict[str, Any]:
    return {"auth": {"enabled": True, "admin_token": ADMIN, **auth}}


async def auth_client(make_client: MakeClient, **auth: Any) -> Client:
    return await make_client(auth_overrides(**auth))


async def new_project(client: Client, name: str, **fields: Any) -> Any:
    return await call(client, "POST", "/projects", status=201, body={"name": name, **fields}, headers=ADMIN_HEADERS)


async def issue(client: Client, project: str, role: Role | str, **fields: Any) -> str:
    body: Mapping[str, Any] = {"role": str(role), **fields}
    issued = await call(
        client, "POST", f"/projects/{project}/tokens", status=201, body=dict(body), headers=ADMIN_HEADERS
    )
    token = issued["token"]
    assert isinstance(token, str)
    return token

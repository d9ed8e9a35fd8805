"""Contract: project and token records (admin records, not themselves per project)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tasques.domain.errors import AlreadyExists, NotFound, VersionConflict
from tasques.domain.project import ApiToken, Project, Role
from tasques.domain.task import Metadata
from tasques.store.base import Store
from tests.contract import T0, ts


def _project(name: str, quota: int | None = 1000) -> Project:
    return Project(name=name, max_outstanding_tasks=quota, metadata=Metadata(created_at=T0, modified_at=T0))


def _token(token_id: str, project: str = "alpha", role: Role = Role.WORKER, at: float = 0) -> ApiToken:
    return ApiToken(
        id=token_id,
        project=project,
        role=role,
        name="ci",
        secret_hash="ab" * 32,
        expires_at=ts(3600),
        allowed_networks=["10.0.0.0/8", "::1/128"],
        metadata=Metadata(created_at=ts(at), modified_at=ts(at)),
    )


async def test_projects_round_trip_and_update_conditionally(store: Store) -> None:
    created = await store.insert_project(_project("alpha"))
    await store.insert_project(_project("beta", None))
    with pytest.raises(AlreadyExists):
        await store.insert_project(_project("alpha"))
    got = await store.get_project("alpha")
    assert got == created
    assert (await store.get_project("beta")).max_outstanding_tasks is None
    with pytest.raises(NotFound):
        await store.get_project("gamma")
    assert [p.name for p in await store.list_projects()] == ["alpha", "beta"]
    updated = await store.update_project(got.model_copy(update={"max_outstanding_tasks": 5}))
    assert (await store.get_project("alpha")).max_outstanding_tasks == 5
    with pytest.raises(VersionConflict):
        await store.update_project(got.model_copy(update={"max_outstanding_tasks": 6}))
    assert updated.metadata.version != got.metadata.version


async def test_tokens_round_trip_list_per_project_and_revoke(store: Store) -> None:
    first = await store.insert_token(_token("t1", at=1))
    await store.insert_token(_token("t2", role=Role.ADMIN, at=2))
    await store.insert_token(_token("t3", project="beta", at=3))
    with pytest.raises(AlreadyExists):
        await store.insert_token(_token("t1"))
    assert await store.get_token("t1") == first
    with pytest.raises(NotFound):
        await store.get_token("nope")
    assert [t.id for t in await store.list_tokens("alpha")] == ["t1", "t2"]
    assert [t.id for t in await store.list_tokens("beta")] == ["t3"]
    assert await store.list_tokens("gamma") == []
    revoked = await store.update_token(first.model_copy(update={"revoked_at": ts(10)}))
    assert (await store.get_token("t1")).revoked_at == ts(10)
    assert not revoked.live_at(ts(11))
    with pytest.raises(VersionConflict):
        await store.update_token(first.model_copy(update={"name": "again"}))
    # Revoked tokens are still listed, so an admin sees what was revoked and when.
    assert [t.revoked_at for t in await store.list_tokens("alpha")] == [ts(10), None]
    assert (await store.get_token("t2")).expires_at == ts(3600)
    assert _token("x").live_at(ts(3600) - timedelta(microseconds=1))

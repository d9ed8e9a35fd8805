"""`tasques snapshot` on the real Elasticsearch: snapshot a store, restore it into an empty prefix and under its
own prefix once that is empty, and the refusals (a live store, a location outside path.repo, another store kind)."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from elasticsearch import AsyncElasticsearch

from tasques.backup.snapshots import SnapshotError, Snapshots, check_prefix, default_repository, snapshot_name
from tasques.cli import main
from tasques.domain.task import Task, TaskState
from tasques.store.elasticsearch.names import IndexNames
from tasques.store.elasticsearch.store import ElasticsearchStore
from tests.contract import claim_as, finished, make_recurring, make_task, ts
from tests.contract.conftest import es_settings
from tests.process import delete_es_prefix, es_server_settings


@pytest.fixture
def prefixes(elasticsearch_url: str) -> Iterator[list[str]]:
    """Fresh prefixes for one test (the first is the store's); every index, snapshot and repository under them
    is deleted afterwards, with the repository's directory under path.repo."""
    made: list[str] = []
    yield made
    asyncio.run(_clean(elasticsearch_url, made))


async def _clean(url: str, prefixes: list[str]) -> None:
    async with AsyncElasticsearch(url, request_timeout=30) as client:
        info = await client.nodes.info(metric="settings", filter_path="nodes.*.settings.path.repo")
        roots = {Path(root) for node in info.body["nodes"].values() for root in node["settings"]["path"]["repo"]}
        for prefix in prefixes:
            repository = default_repository(prefix)
            found = await client.options(ignore_status=404).snapshot.get(repository=repository, snapshot="_all")
            for snap in found.body.get("snapshots", []) if found.meta.status == 200 else []:
                await client.snapshot.delete(repository=repository, snapshot=snap["snapshot"])
            await client.options(ignore_status=404).snapshot.delete_repository(name=repository)
            for root in roots:
                if (root / repository).exists():
                    await asyncio.to_thread(shutil.rmtree, root / repository)
    for prefix in prefixes:
        await delete_es_prefix(url, prefix)


def _fresh(prefixes: list[str]) -> str:
    prefixes.append(f"t-snap-{uuid.uuid4().hex[:10]}")
    return prefixes[-1]


async def _fill(url: str, prefix: str) -> dict[str, Task]:
    """A store with a pending, a claimed and an archived task and a recurring task; its tasks by id."""
    store = ElasticsearchStore.from_config(es_settings(url, prefix))
    await store.open()
    try:
        await store.insert_recurring(make_recurring("every-minute"))
        await store.insert_task(make_task("q", "pending", run_at=ts(1000)))
        await store.insert_task(make_task("q", "claimed"))
        await store.insert_task(finished(make_task("q", "archived"), ts(1)))
        assert await store.archive_finished(ts(10), 10) == 1
        [claimed] = await store.claim_tasks(["q"], ts(5), 1, claim_as("w1", ts(5)))
        assert claimed.id == "claimed"
        return {i: await store.get_task("q", i) for i in ("pending", "claimed", "archived")}
    finally:
        await store.close()


async def _read(url: str, prefix: str) -> tuple[dict[str, Task], list[str]]:
    """The tasks and recurring task ids an opened store under `prefix` sees."""
    store = ElasticsearchStore.from_config(es_settings(url, prefix))
    await store.open()
    try:
        tasks = {i: await store.get_task("q", i) for i in ("pending", "claimed", "archived")}
        return tasks, [r.id for r in await store.list_recurring()]
    finally:
        await store.close()


def _same(restored: dict[str, Task], original: dict[str, Task]) -> None:
    # A restore keeps the documents, not their _seq_no/_primary_term: the version may differ.
    assert {i: t.model_dump(exclude={"metadata"}) for i, t in restored.items()} == {
        i: t.model_dump(exclude={"metadata"}) for i, t in original.items()
    }
    assert [restored[i].state for i in ("pending", "claimed", "archived")] == [
        TaskState.QUEUED,
        TaskState.CLAIMED,
        TaskState.DONE,
    ]


async def _archive_alias(url: str, names: IndexNames) -> dict[str, bool]:
    async with AsyncElasticsearch(url, request_timeout=30) as client:
        resp = await client.indices.get_alias(name=names.archive_alias)
        return {i: bool(b["aliases"][names.archive_alias].get("is_write_index")) for i, b in resp.body.items()}


@pytest.mark.elasticsearch
def test_snapshot_and_restore_through_the_cli(
    elasticsearch_url: str, prefixes: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = elasticsearch_url
    prefix, other = _fresh(prefixes), _fresh(prefixes)
    for key, value in es_server_settings(url, prefix).items():
        monkeypatch.setenv(key, value)
    original = asyncio.run(_fill(url, prefix))

    assert main(["snapshot", "create"]) == 0
    name = capsys.readouterr().out.strip()
    assert name.startswith("tasques-")
    assert name == name.lower()
    assert main(["snapshot", "list"]) == 0
    [row] = capsys.readouterr().out.strip().splitlines()
    assert row.split("\t")[:2] == [name, "SUCCESS"]
    assert row.endswith("\t11 indices")

    # Into an empty prefix: the indices renamed, the archive alias made for it (and the old one left alone).
    assert main(["snapshot", "restore", name, "--into-prefix", other]) == 0
    assert f"into index prefix {other}" in capsys.readouterr().out
    assert asyncio.run(_archive_alias(url, IndexNames(other))) == {f"{other}-archive-000001": True}
    assert asyncio.run(_archive_alias(url, IndexNames(prefix))) == {f"{prefix}-archive-000001": True}
    tasks, recurring = asyncio.run(_read(url, other))
    _same(tasks, original)
    assert recurring == ["every-minute"]

    # Never over a live store; once its indices are gone, back under its own prefix.
    assert main(["snapshot", "restore", name]) == 2
    refused = capsys.readouterr().err
    assert f"index prefix {prefix} is not empty ({prefix}-tasks," in refused
    assert "never overwrites" in refused
    assert main(["snapshot", "restore", name, "--into-prefix", other]) == 2
    assert f"index prefix {other} is not empty" in capsys.readouterr().err
    asyncio.run(delete_es_prefix(url, prefix))
    assert main(["snapshot", "restore", name]) == 0
    assert asyncio.run(_archive_alias(url, IndexNames(prefix))) == {f"{prefix}-archive-000001": True}
    tasks, recurring = asyncio.run(_read(url, prefix))
    _same(tasks, original)
    assert recurring == ["every-minute"]

    assert main(["snapshot", "restore", "tasques-nosuch"]) == 2
    assert f"there is no snapshot tasques-nosuch in repository {prefix}-snapshots" in capsys.readouterr().err


@pytest.mark.elasticsearch
async def test_a_repository_outside_path_repo_is_refused_clearly(elasticsearch_url: str, prefixes: list[str]) -> None:
    prefix = _fresh(prefixes)
    async with AsyncElasticsearch(elasticsearch_url, request_timeout=30) as client:
        snapshots = Snapshots(client, prefix)
        with pytest.raises(SnapshotError, match=r"doesn't match any of the locations specified by path\.repo") as e:
            await snapshots.ensure_repository("/definitely/not/under/path-repo")
        assert f"file-system snapshot repository {prefix}-snapshots at /definitely/not/under/path-repo" in str(e.value)
        # Registered once, it is reused as it is, and never moved.
        await snapshots.ensure_repository()
        await snapshots.ensure_repository()
        await snapshots.ensure_repository(f"{prefix}-snapshots")
        with pytest.raises(SnapshotError, match="already exists"):
            await snapshots.ensure_repository("elsewhere")
        assert await snapshots.list_snapshots() == []
        with pytest.raises(SnapshotError, match=f"no Tasques store under index prefix {prefix}"):
            await snapshots.create("tasques-empty")
        with pytest.raises(SnapshotError, match="not valid"):
            await snapshots.create("Upper")


def test_the_command_needs_the_elasticsearch_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TASQUES_STORE_KIND", "sqlite")
    monkeypatch.setenv("TASQUES_STORE_SQLITE_PATH", str(tmp_path / "t.db"))
    assert main(["snapshot", "list"]) == 2
    assert "snapshots are of the Elasticsearch store; store.kind is sqlite" in capsys.readouterr().err


def test_names_are_lower_case_utc_and_prefixes_strict() -> None:
    assert (
        snapshot_name(datetime(2026, 12, 3, 15, 25, tzinfo=timezone(timedelta(hours=1)))) == "tasques-20261203t142500z"
    )
    assert check_prefix("tasques-restored_1.b") == "tasques-restored_1.b"
    for bad in ("Upper", "-dash", "a b", "a$1", "a*", ""):
        with pytest.raises(SnapshotError, match="not one a snapshot can be restored into"):
            check_prefix(bad)

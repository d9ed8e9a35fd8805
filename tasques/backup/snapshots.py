"""Snapshots of the Elasticsearch store: the cluster's own backups, limited to the indices of one index prefix.

A snapshot holds the live indices and every archive index of the prefix, with their aliases, and no global
state: index templates (and the ILM policy) are not in it, because the store's `open()` puts them again on the
next start. Each snapshot records, in its `metadata`, the prefix it was taken of and which archive index was
the write index, so that a restore under another prefix can rename the indices and rebuild the archive alias.

A restore never overwrites: every index and alias of the target prefix must be absent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from elasticsearch import ApiError, AsyncElasticsearch, TransportError

from tasques.store.elasticsearch.names import IndexNames

# The `IndexNames` properties of the live indices (the archive's are found by name: see `_archive_indices`).
LIVE = ("tasks", "recurring", "locks", "queues", "timeline", "projects", "tokens", "admissions", "workers", "batches")
# Seconds one snapshot or restore may take while we wait for it (one request, `wait_for_completion`).
WAIT_SECONDS = 3600.0
METADATA_KEY = "tasques"
# Index names Elasticsearch accepts, kept simpler: a prefix of them must also be a valid rename replacement.
_PREFIX = re.compile(r"[a-z0-9][a-z0-9_.-]{0,99}")
# Snapshot and repository names: lower case (Elasticsearch refuses upper case), no separators or wildcards.
_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,199}")


class SnapshotError(Exception):
    """A snapshot operation was refused or failed; the message says which and why."""


@dataclass(frozen=True)
class SnapshotInfo:
    name: str
    state: str
    start: datetime | None
    end: datetime | None
    indices: int


@dataclass(frozen=True)
class Restored:
    snapshot: str
    prefix: str
    indices: list[str]


def check_prefix(prefix: str) -> str:
    if not _PREFIX.fullmatch(prefix):
        raise SnapshotError(
            f"index prefix {prefix!r} is not one a snapshot can be restored into: lower-case letters, digits, "
            "'-', '_' and '.', starting with a letter or digit, at most 100 characters"
        )
    return prefix


def check_name(what: str, name: str) -> str:
    if not _NAME.fullmatch(name):
        raise SnapshotError(
            f"{what} name {name!r} is not valid: lower-case letters, digits, '-', '_' and '.', starting with a "
            "letter or digit, at most 200 characters"
        )
    return name


def default_repository(prefix: str) -> str:
    return f"{prefix}-snapshots"


def snapshot_name(at: datetime) -> str:
    """`tasques-20261203t142500z`: the UTC time to the second, lower case as Elasticsearch requires."""
    return f"tasques-{at.astimezone(UTC):%Y%m%dt%H%M%Sz}"


def _reason(e: ApiError | TransportError) -> str:
    """The innermost reason of an Elasticsearch error (the outer one is often just "failed to create ...")."""
    if isinstance(e, TransportError):
        return str(e)
    error = e.body.get("error") if isinstance(e.body, dict) else None
    reason = str(e.message)
    while isinstance(error, dict):
        if isinstance(error.get("reason"), str):
            reason = error["reason"]
        error = error.get("caused_by")
    return reason


class Snapshots:
    """Snapshots of the indices of `prefix` in one snapshot repository."""

    def __init__(self, client: AsyncElasticsearch, prefix: str, repository: str | None = None) -> None:
        self._client = client
        self.names = IndexNames(prefix)
        self.repository = check_name("repository", repository or default_repository(prefix))

    # Repository

    async def ensure_repository(self, location: str | None = None) -> None:
        """Register the repository as a file-system one at `location` (default: its name, which Elasticsearch
        resolves under the node's `path.repo`). An existing repository is used as it is (any type, e.g. one
        of a cloud plugin registered by hand) unless `location` says otherwise."""
        existing = await self._repository()
        if existing is not None:
            have = existing.get("settings", {}).get("location")
            if location is None or (existing.get("type") == "fs" and have == location):
                return
            raise SnapshotError(
                f"snapshot repository {self.repository} already exists ({existing.get('type')} at {have}); "
                f"it is not re-registered at {location}: use another --repository or omit --location"
            )
        where = location or self.repository
        try:
            await self._client.snapshot.create_repository(
                name=self.repository, repository={"type": "fs", "settings": {"location": where}}
            )
        except (ApiError, TransportError) as e:
            raise SnapshotError(
                f"Elasticsearch refused the file-system snapshot repository {self.repository} at {where}: "
                f"{_reason(e)} (its location must lie under the path.repo setting of every node)"
            ) from None

    async def _repository(self) -> dict[str, Any] | None:
        resp = await self._client.options(ignore_status=404).snapshot.get_repository(name=self.repository)
        if resp.meta.status == 404:
            return None
        found: dict[str, Any] = resp.body.get(self.repository, {})
        return found

    async def _require_repository(self) -> None:
        if await self._repository() is None:
            raise SnapshotError(
                f"there is no snapshot repository {self.repository} (`tasques snapshot create` registers it)"
            )

    # Create, list

    async def create(self, name: str, *, wait: bool = True) -> SnapshotInfo | None:
        """Snapshot the prefix's indices as `name`; with `wait`, return once it is complete (None without)."""
        check_name("snapshot", name)
        await self._require_repository()
        live = await self._existing(self._live())
        if self.names.tasks not in live:
            raise SnapshotError(f"there is no Tasques store under index prefix {self.names.prefix} to snapshot")
        archive = await self._archive_indices()
        metadata = {
            METADATA_KEY: {
                "prefix": self.names.prefix,
                "indices": live + archive,
                "archive_write_index": await self._archive_write_index(),
            }
        }
        try:
            resp = await self._client.options(request_timeout=WAIT_SECONDS).snapshot.create(
                repository=self.repository,
                snapshot=name,
                indices=",".join(live + archive),
                include_global_state=False,
                ignore_unavailable=False,
                partial=False,
                metadata=metadata,
                wait_for_completion=wait,
            )
        except (ApiError, TransportError) as e:
            raise SnapshotError(f"snapshot {name} in repository {self.repository} failed: {_reason(e)}") from None
        if not wait:
            return None
        info = _info(resp.body["snapshot"])
        if info.state != "SUCCESS":
            failures = resp.body["snapshot"].get("failures") or []
            raise SnapshotError(f"snapshot {name} ended {info.state}: {failures}")
        return info

    async def list_snapshots(self) -> list[SnapshotInfo]:
        """The repository's snapshots, oldest first."""
        await self._require_repository()
        resp = await self._client.snapshot.get(repository=self.repository, snapshot="_all", sort="start_time")
        return [_info(s) for s in resp.body.get("snapshots", [])]

    async def delete(self, name: str) -> None:
        await self._client.snapshot.delete(repository=self.repository, snapshot=name)

    # Restore

    async def restore(self, name: str, into_prefix: str | None = None) -> Restored:
        """Restore snapshot `name` under `into_prefix` (default: this store's prefix), whose indices must all
        be absent. Under another prefix than the snapshot's, the indices are renamed and the archive alias is
        made for the new prefix (Elasticsearch would restore the old alias names, joining the old store)."""
        target = IndexNames(check_prefix(into_prefix or self.names.prefix))
        await self._require_repository()
        snap = await self._snapshot(name)
        meta = (snap.get("metadata") or {}).get(METADATA_KEY)
        if not isinstance(meta, dict) or not isinstance(meta.get("prefix"), str):
            raise SnapshotError(
                f"snapshot {name} was not taken by `tasques snapshot create`: it has no tasques metadata"
            )
        source = IndexNames(meta["prefix"])
        indices = [i for i in snap.get("indices", []) if i in set(meta.get("indices", []))]
        if source.tasks not in indices:
            raise SnapshotError(f"snapshot {name} holds no {source.tasks} index")
        await self._refuse_if_present(target)
        renamed = target.prefix != source.prefix
        body: dict[str, Any] = {
            "indices": ",".join(indices),
            "include_global_state": False,
            "include_aliases": not renamed,
            "wait_for_completion": True,
        }
        if renamed:
            body["rename_pattern"] = f"^{re.escape(source.prefix)}-(.+)$"
            body["rename_replacement"] = f"{target.prefix}-$1"
        try:
            await self._client.options(request_timeout=WAIT_SECONDS).snapshot.restore(
                repository=self.repository, snapshot=name, **body
            )
        except (ApiError, TransportError) as e:
            raise SnapshotError(f"restoring snapshot {name} failed: {_reason(e)}") from None
        restored = [target.prefix + i[len(source.prefix) :] for i in indices]
        if renamed:
            await self._realias(source, target, restored, meta.get("archive_write_index"))
        return Restored(snapshot=name, prefix=target.prefix, indices=restored)

    async def _snapshot(self, name: str) -> dict[str, Any]:
        resp = await self._client.options(ignore_status=404).snapshot.get(repository=self.repository, snapshot=name)
        snaps = (resp.body.get("snapshots") or []) if resp.meta.status != 404 else []
        if not snaps:
            raise SnapshotError(f"there is no snapshot {name} in repository {self.repository}")
        found: dict[str, Any] = snaps[0]
        if found.get("state") != "SUCCESS":
            raise SnapshotError(f"snapshot {name} is {found.get('state')}, not SUCCESS: it cannot be restored")
        return found

    async def _refuse_if_present(self, target: IndexNames) -> None:
        present = await self._existing([getattr(target, what) for what in LIVE]) + await _archive_of(
            self._client, target
        )
        if not present and not await self._client.indices.exists_alias(name=target.archive_alias):
            return
        shown = ", ".join(present) or f"alias {target.archive_alias}"
        raise SnapshotError(
            f"index prefix {target.prefix} is not empty ({shown}): a restore never overwrites a store; delete its "
            "indices first or restore with --into-prefix NEW"
        )

    async def _realias(self, source: IndexNames, target: IndexNames, restored: list[str], write: Any) -> None:
        """Point `{target}-archive` at the restored archive indices; the write index is the snapshot's (else the
        last by name, as rollover names them). ILM settings naming the old prefix are moved to the new one."""
        archive = sorted(i for i in restored if _is_archive(target, i))
        if not archive:
            return
        wanted = target.prefix + write[len(source.prefix) :] if isinstance(write, str) else archive[-1]
        if wanted not in archive:
            wanted = archive[-1]
        actions = [{"add": {"index": i, "alias": target.archive_alias, "is_write_index": i == wanted}} for i in archive]
        await self._client.indices.update_aliases(actions=actions)
        resp = await self._client.indices.get_settings(index=",".join(archive), name="index.lifecycle.*")
        for index, body in resp.body.items():
            lifecycle = body.get("settings", {}).get("index", {}).get("lifecycle", {})
            moved: dict[str, str] = {}
            if lifecycle.get("rollover_alias") == source.archive_alias:
                moved["index.lifecycle.rollover_alias"] = target.archive_alias
            if lifecycle.get("name") == source.archive_policy:
                moved["index.lifecycle.name"] = target.archive_policy  # put by the store's open()
            if moved:
                await self._client.indices.put_settings(index=index, settings=moved)

    # Names

    def _live(self) -> list[str]:
        return [getattr(self.names, what) for what in LIVE]

    async def _existing(self, indices: list[str]) -> list[str]:
        resp = await self._client.indices.get(
            index=",".join(indices), ignore_unavailable=True, allow_no_indices=True, expand_wildcards="all"
        )
        return [i for i in indices if i in resp.body]

    async def _archive_indices(self) -> list[str]:
        return await _archive_of(self._client, self.names)

    async def _archive_write_index(self) -> str | None:
        resp = await self._client.options(ignore_status=404).indices.get_alias(name=self.names.archive_alias)
        if resp.meta.status == 404:
            return None
        for index, body in resp.body.items():
            if body.get("aliases", {}).get(self.names.archive_alias, {}).get("is_write_index"):
                return str(index)
        return None


def _is_archive(names: IndexNames, index: str) -> bool:
    """An archive index of exactly this prefix (`{prefix}-archive-000001`…), not of a prefix extending it."""
    return re.fullmatch(rf"{re.escape(names.prefix)}-archive-\d+", index) is not None


async def _archive_of(client: AsyncElasticsearch, names: IndexNames) -> list[str]:
    resp = await client.indices.get(
        index=names.archive_pattern, ignore_unavailable=True, allow_no_indices=True, expand_wildcards="all"
    )
    return sorted(i for i in resp.body if _is_archive(names, i))


def _time(millis: Any) -> datetime | None:
    return datetime.fromtimestamp(millis / 1000, tz=UTC) if isinstance(millis, int) else None


def _info(snap: dict[str, Any]) -> SnapshotInfo:
    return SnapshotInfo(
        name=str(snap["snapshot"]),
        state=str(snap.get("state", "UNKNOWN")),
        start=_time(snap.get("start_time_in_millis")),
        end=_time(snap.get("end_time_in_millis")),
        indices=len(snap.get("indices", [])),
    )

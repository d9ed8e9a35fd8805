"""The archive's lifecycle: indices `{prefix}-archive-000001…` behind the write alias `{prefix}-archive`.

Two modes, chosen at `setup()`:

- ILM (the cluster has index lifecycle management): Tasques puts its policy `{prefix}-archive-policy` (or uses
  the one `ilm_policy` names), the archive template points new indices at it, and ILM rolls the alias over and
  deletes old indices. `maintain()` does nothing.
- Manual (no ILM, e.g. the integ-test distribution): `maintain(now)` rolls the alias over when the index meets
  `archive_rollover_max_age` / `archive_rollover_max_docs`, and deletes, by name, every archive index that
  rolled over more than `archive_retention` before `now`. The write index is never deleted.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from elasticsearch import ApiError, AsyncElasticsearch

from tasques.config import ElasticsearchConfig
from tasques.store.elasticsearch.cluster import has_ilm
from tasques.store.elasticsearch.mappings import IndexNames, JsonDict, archive_mappings, archive_template_body, es_time

log = logging.getLogger("tasques.store.elasticsearch")


def ilm_policy_body(settings: ElasticsearchConfig) -> JsonDict:
    """The request body of `PUT _ilm/policy/{prefix}-archive-policy`.

    Hot: roll over at the configured age or size. Delete: `archive_retention` after the rollover (ILM counts a
    phase's `min_age` from the rollover once an index has rolled over).
    """
    return {
        "policy": {
            "_meta": {"managed_by": "tasques"},
            "phases": {
                "hot": {
                    "min_age": "0ms",
                    "actions": {
                        "rollover": {
                            "max_age": es_time(settings.archive_rollover_max_age),
                            "max_docs": settings.archive_rollover_max_docs,
                        }
                    },
                },
                "delete": {"min_age": es_time(settings.archive_retention), "actions": {"delete": {}}},
            },
        }
    }


def rollover_conditions(settings: ElasticsearchConfig) -> JsonDict:
    """The conditions of the manual mode's `POST {alias}/_rollover`."""
    return {
        "max_age": es_time(settings.archive_rollover_max_age),
        "max_docs": settings.archive_rollover_max_docs,
    }


@dataclass(frozen=True)
class ArchiveIndex:
    name: str
    created_at: datetime
    is_write_index: bool


def expired_indices(indices: list[ArchiveIndex], retention: timedelta, now: datetime) -> list[str]:
    """Names of the archive indices to delete at `now`: rolled over at least `retention` ago.

    An index rolled over when its successor was created, so its rollover time is the next index's creation
    time. The write index (and the newest index, whatever the alias says) is never expired.
    """
    ordered = sorted(indices, key=lambda i: (i.created_at, i.name))
    expired: list[str] = []
    for index, successor in itertools.pairwise(ordered):
        if not index.is_write_index and successor.created_at + retention <= now:
            expired.append(index.name)
    return expired


@dataclass
class MaintenanceResult:
    rolled_over_to: str | None = None
    deleted: list[str] = field(default_factory=list)


class ArchiveLifecycle:
    """Puts the archive template (and ILM policy), bootstraps the first index, and runs the manual mode."""

    def __init__(self, client: AsyncElasticsearch, names: IndexNames, settings: ElasticsearchConfig) -> None:
        self._client = client
        self._names = names
        self._settings = settings
        self.ilm: bool | None = None  # known after setup()

    async def setup(self) -> None:
        ilm = await has_ilm(self._client)
        if ilm and self._settings.ilm_policy is None:
            await self._client.ilm.put_lifecycle(name=self._names.archive_policy, body=ilm_policy_body(self._settings))
        if not ilm and self._settings.ilm_policy is not None:
            log.warning(
                "ilm_policy %r is set but the cluster has no ILM: managing the archive without it",
                self._settings.ilm_policy,
            )
        await self._client.indices.put_index_template(
            name=self._names.template("archive"), body=archive_template_body(self._names, self._settings, ilm=ilm)
        )
        await self._bootstrap()
        self.ilm = ilm
        if ilm:
            log.info(
                "archive %s: lifecycle by ILM policy %s",
                self._names.archive_alias,
                self._settings.ilm_policy or self._names.archive_policy,
            )
        else:
            log.info(
                "archive %s: no ILM on this cluster; the archiver rolls it over (%s or %d docs) and deletes "
                "indices %s after rollover",
                self._names.archive_alias,
                es_time(self._settings.archive_rollover_max_age),
                self._settings.archive_rollover_max_docs,
                es_time(self._settings.archive_retention),
            )

    async def _bootstrap(self) -> None:
        if await self._client.indices.exists_alias(name=self._names.archive_alias):
            # Indices from an older Tasques get the new fields (the mapping is strict), like the live ones.
            await self._client.indices.put_mapping(index=self._names.archive_alias, body=archive_mappings())
            return
        try:
            await self._client.indices.create(
                index=self._names.first_archive_index,
                aliases={self._names.archive_alias: {"is_write_index": True}},
            )
        except ApiError as e:
            # Another server bootstrapped it at the same moment.
            if error_type(e) != "resource_already_exists_exception":
                raise

    async def indices(self) -> list[ArchiveIndex]:
        """The indices behind the archive alias, oldest first."""
        aliases = (await self._client.indices.get_alias(name=self._names.archive_alias)).body
        if not aliases:
            return []
        found = await self._client.indices.get_settings(index=self._names.archive_alias, name="index.creation_date")
        out: list[ArchiveIndex] = []
        for name in aliases:
            created_ms = int(found.body[name]["settings"]["index"]["creation_date"])
            alias = aliases[name]["aliases"].get(self._names.archive_alias, {})
            out.append(
                ArchiveIndex(
                    name=name,
                    created_at=datetime.fromtimestamp(created_ms / 1000, tz=UTC),
                    is_write_index=bool(alias.get("is_write_index", False)),
                )
            )
        out.sort(key=lambda i: (i.created_at, i.name))
        return out

    async def maintain(self, now: datetime) -> MaintenanceResult:
        """Manual mode: roll over if due, then delete expired indices. A no-op under ILM."""
        result = MaintenanceResult()
        if self.ilm is None or self.ilm:
            return result
        resp = await self._client.indices.rollover(
            alias=self._names.archive_alias, conditions=rollover_conditions(self._settings)
        )
        if resp.body.get("rolled_over"):
            result.rolled_over_to = str(resp.body["new_index"])
            log.info("archive rolled over from %s to %s", resp.body.get("old_index"), result.rolled_over_to)
        for name in expired_indices(await self.indices(), self._settings.archive_retention, now):
            try:
                await self._client.indices.delete(index=name)
            except ApiError as e:
                if e.meta.status != 404:  # another server deleted it first
                    raise
            log.info(
                "archive index %s deleted: past its retention of %s", name, es_time(self._settings.archive_retention)
            )
            result.deleted.append(name)
        return result


def error_type(e: ApiError) -> str | None:
    """The `error.type` of an Elasticsearch error response, e.g. `resource_already_exists_exception`."""
    body = e.body
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            kind = error.get("type")
            return kind if isinstance(kind, str) else None
    return None

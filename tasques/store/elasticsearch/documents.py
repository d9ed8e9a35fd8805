"""Documents of the Elasticsearch store: how records are serialized and read back.

Pure helpers, no I/O: `es_date` (query bounds), `_source_of` (a record's `_source`, without its version),
`_versioned`/`_with_version` (the version is the document's `_seq_no`/`_primary_term`, rebuilt on every read
and after every write), the `*_from` parsers, and `_item_error` for a bulk item that failed.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from tasques.domain.batch import Batch
from tasques.domain.errors import StoreUnavailable
from tasques.domain.project import ApiToken, Project
from tasques.domain.queue import QueueSettings
from tasques.domain.recurring import RecurringTask
from tasques.domain.task import CLAIMABLE_STATES, FINISHED_STATES, Task, Version
from tasques.store.elasticsearch.faults import UNAVAILABLE_STATUSES
from tasques.store.elasticsearch.mappings import JsonDict
from tasques.store.sealed_records import needs_sealing, seal_record, unseal_batch, unseal_recurring, unseal_task
from tasques.store.sealing import Sealer

_NO_VERSION: Mapping[str, Any] = {"metadata": {"version"}}
_CLAIMABLE = sorted(s.value for s in CLAIMABLE_STATES)
_FINISHED = sorted(s.value for s in FINISHED_STATES)
_OK = (200, 201)


class ElasticsearchStoreError(RuntimeError):
    """Elasticsearch refused a write for a reason other than a version conflict (a bug or an overload)."""


def es_date(at: datetime) -> str:
    """A time as Elasticsearch reads it, in UTC with microseconds. Naive datetimes are refused."""
    if at.utcoffset() is None:
        raise ValueError(f"naive datetime {at!r}: the store needs time-zone-aware datetimes")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _source_of(
    record: Task | RecurringTask | QueueSettings | Project | ApiToken | Batch, sealer: Sealer | None
) -> JsonDict:
    # The version is not stored: it is the document's _seq_no/_primary_term, rebuilt on every read.
    source = record.model_dump(mode="json", exclude=_NO_VERSION)
    if isinstance(record, Task | RecurringTask | Batch) and needs_sealing(record):
        seal_record(record, source, sealer)  # the sealed fields are opaque in the mappings
    if isinstance(record, Task):
        source["target"] = record.target.value  # derived, indexed for claims
    return source


_Versioned = TypeVar("_Versioned", Task, RecurringTask, QueueSettings, Project, ApiToken, Batch)


def _versioned(record: _Versioned, seq_no: int, primary_term: int) -> _Versioned:
    version = Version(seq_num=seq_no, primary_term=primary_term)
    return record.model_copy(update={"metadata": record.metadata.model_copy(update={"version": version})})


def _with_version(doc: JsonDict) -> JsonDict:
    """The `_source` of a get or search hit, with `metadata.version` rebuilt from the hit."""
    source: JsonDict = doc["_source"]
    source["metadata"]["version"] = {"seq_num": doc["_seq_no"], "primary_term": doc["_primary_term"]}
    return source


def _task_from(doc: JsonDict, sealer: Sealer | None) -> Task:
    source = _with_version(doc)
    source.pop("archived_at", None)
    source.pop("target", None)
    return Task.model_validate(unseal_task(source, sealer))


def _recurring_from(doc: JsonDict, sealer: Sealer | None) -> RecurringTask:
    return RecurringTask.model_validate(unseal_recurring(_with_version(doc), sealer))


def _batch_from(doc: JsonDict, sealer: Sealer | None) -> Batch:
    return Batch.model_validate(unseal_batch(_with_version(doc), sealer))


def _queue_settings_from(doc: JsonDict) -> QueueSettings:
    return QueueSettings.model_validate(_with_version(doc))


def _project_from(doc: JsonDict) -> Project:
    return Project.model_validate(_with_version(doc))


def _token_from(doc: JsonDict) -> ApiToken:
    return ApiToken.model_validate(_with_version(doc))


def _item_error(action: str, item: JsonDict) -> ElasticsearchStoreError | StoreUnavailable:
    if item.get("status") in UNAVAILABLE_STATUSES:  # e.g. 429 es_rejected_execution_exception: overloaded
        return StoreUnavailable(f"elasticsearch refused the {action} of {item.get('_id')}: {item.get('status')}")
    return ElasticsearchStoreError(
        f"{action} of {item.get('_id')} failed with {item.get('status')}: {item.get('error')}"
    )

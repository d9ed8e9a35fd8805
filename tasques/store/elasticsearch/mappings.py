"""Index names, mappings, settings and index templates, as code. See README.md for the layout and why.

Every function here is pure, so tests can check exactly what is sent to the cluster.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tasques.config import ElasticsearchConfig

# Re-exported: they lived here before names.py.
from tasques.store.elasticsearch.names import IndexNames as IndexNames
from tasques.store.elasticsearch.names import doc_log_fields as doc_log_fields
from tasques.store.elasticsearch.names import task_doc_id as task_doc_id

JsonDict = dict[str, Any]

# Composable templates with overlapping patterns must differ in priority; this one is above the built-in
# templates of a default distribution (logs-*-*, metrics-*-* and friends use 100).
TEMPLATE_PRIORITY = 200
# Bumped whenever a mapping or template changes, so an operator can tell which Tasques put a template.
# 5: the project (tenant) in every document and `_id`; documents of earlier versions migrate at open (migrate.py).
# 6: dependencies, batches, replays and cancel reasons on tasks; the workers and batches indices (new fields
#    only: existing indices take them by put_mapping at open).
TEMPLATE_VERSION = 6
_META: JsonDict = {"managed_by": "tasques"}


def es_time(value: timedelta) -> str:
    """An Elasticsearch time value (`"30d"`, `"90s"`, `"250ms"`) exactly equal to `value`.

    Negative values give `"-1"`, which for `refresh_interval` means "never refresh on a timer".
    """
    micros = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    if micros < 0:
        return "-1"
    if micros == 0:
        return "0s"
    for unit, size in (("d", 86_400_000_000), ("h", 3_600_000_000), ("m", 60_000_000), ("s", 1_000_000)):
        if micros % size == 0:
            return f"{micros // size}{unit}"
    if micros % 1_000 == 0:
        return f"{micros // 1_000}ms"
    return f"{micros}micros"


# Field types

_KEYWORD: JsonDict = {"type": "keyword"}
_INTEGER: JsonDict = {"type": "integer"}
_BOOLEAN: JsonDict = {"type": "boolean"}
# Microsecond precision survives (date would truncate to milliseconds); sorts and ranges are exact.
_DATE: JsonDict = {"type": "date_nanos"}
# Kept in _source only: never searched, sorted or aggregated.
_STORED_KEYWORD: JsonDict = {"type": "keyword", "index": False, "doc_values": False}
# User JSON: kept in _source, never parsed into fields, so any keys are fine and the mapping never grows.
_OPAQUE: JsonDict = {"type": "object", "enabled": False}


def task_properties() -> JsonDict:
    """Every field of a `Task` except `metadata.version`, which is `_seq_no`/`_primary_term`."""
    return {
        "project": _KEYWORD,
        "id": _KEYWORD,
        "queue": _KEYWORD,
        "sensitive": _BOOLEAN,
        "kind": _KEYWORD,
        "priority": _INTEGER,
        "run_at": _DATE,
        "args": _OPAQUE,
        "context": _OPAQUE,
        "state": _KEYWORD,
        "retry_times": _INTEGER,
        "attempted": _INTEGER,
        "processing_timeout": _STORED_KEYWORD,
        "last_enqueued_at": _DATE,
        "recurring_task_id": _KEYWORD,
        "target": _KEYWORD,
        "http_request": _OPAQUE,
        "retry_policy": _OPAQUE,
        "first_attempted_at": _DATE,
        "repeat": _OPAQUE,
        "repeated": _INTEGER,
        # Dependents are found by a terms query on the ids (then checked for the exact (queue, id) in memory).
        "depends_on": {"properties": {"queue": _KEYWORD, "id": _KEYWORD}},
        "on_dependency_failure": _KEYWORD,
        "batch_id": _KEYWORD,
        "cancel_reason": _STORED_KEYWORD,
        "replayed": _INTEGER,
        "last_claimed": {
            "properties": {
                "worker_id": _KEYWORD,
                "claim_id": _STORED_KEYWORD,
                "claimed_at": _DATE,
                "times_out_at": _DATE,
                "last_report": {"properties": {"at": _DATE, "data": _OPAQUE}},
                "result": {"properties": {"at": _DATE, "failure": _OPAQUE, "success": _OPAQUE}},
            }
        },
        "metadata": {"properties": {"created_at": _DATE, "modified_at": _DATE}},
    }


def task_mappings() -> JsonDict:
    return {"dynamic": "strict", "_meta": _META, "properties": task_properties()}


def archive_mappings() -> JsonDict:
    """The task mapping plus when the task was archived."""
    return {"dynamic": "strict", "_meta": _META, "properties": {**task_properties(), "archived_at": _DATE}}


def recurring_mappings() -> JsonDict:
    return {
        "dynamic": "strict",
        "_meta": _META,
        "properties": {
            "project": _KEYWORD,
            "id": _KEYWORD,
            "schedule_expression": _STORED_KEYWORD,
            "task_definition": _OPAQUE,
            "skip_if_outstanding_tasks_exist": _BOOLEAN,
            "loaded_at": _DATE,
            "last_slot_at": _DATE,
            "last_error": _STORED_KEYWORD,
            "last_error_at": _DATE,
            "metadata": {"properties": {"created_at": _DATE, "modified_at": _DATE}},
        },
    }


def queue_settings_mappings() -> JsonDict:
    return {
        "dynamic": "strict",
        "_meta": _META,
        "properties": {
            "project": _KEYWORD,
            "queue": _KEYWORD,
            "paused": _BOOLEAN,
            "max_dispatches_per_second": {"type": "double"},
            "max_concurrent_dispatches": _INTEGER,
            "retry_policy": _OPAQUE,
            "metadata": {"properties": {"created_at": _DATE, "modified_at": _DATE}},
        },
    }


def timeline_mappings() -> JsonDict:
    return {
        "dynamic": "strict",
        "_meta": _META,
        "properties": {
            "project": _KEYWORD,
            "queue": _KEYWORD,
            "task_id": _KEYWORD,
            "run": _INTEGER,
            "attempt": _INTEGER,
            "worker_id": _KEYWORD,
            "started_at": _DATE,
            "ended_at": _DATE,
            "duration_ms": {"type": "double"},
            "success": _BOOLEAN,
            "status_code": _INTEGER,
            "response_headers": _OPAQUE,
            "response_body": _STORED_KEYWORD,
            "error": _STORED_KEYWORD,
        },
    }


def lock_mappings() -> JsonDict:
    return {"dynamic": "strict", "_meta": _META, "properties": {"holder": _KEYWORD, "expires_at": _DATE}}


def project_mappings() -> JsonDict:
    return {
        "dynamic": "strict",
        "_meta": _META,
        "properties": {
            "name": _KEYWORD,
            "max_outstanding_tasks": {"type": "long"},
            "rate_per_second": {"type": "double"},
            "metadata": {"properties": {"created_at": _DATE, "modified_at": _DATE}},
        },
    }


def token_mappings() -> JsonDict:
    return {
        "dynamic": "strict",
        "_meta": _META,
        "properties": {
            "id": _KEYWORD,
            "project": _KEYWORD,
            "role": _KEYWORD,
            "name": _STORED_KEYWORD,
            "secret_hash": _STORED_KEYWORD,
            "expires_at": _DATE,
            "allowed_networks": _STORED_KEYWORD,
            "revoked_at": _DATE,
            "metadata": {"properties": {"created_at": _DATE, "modified_at": _DATE}},
        },
    }


def admission_mappings() -> JsonDict:
    """One document per project: its recent quota admissions, only ever read by realtime GET."""
    return {"dynamic": "strict", "_meta": _META, "properties": {"project": _KEYWORD, "admissions": _OPAQUE}}


def worker_mappings() -> JsonDict:
    """One document per (project, worker id): the registry's record (`WorkerRecord`)."""
    return {
        "dynamic": "strict",
        "_meta": _META,
        "properties": {
            "project": _KEYWORD,
            "id": _KEYWORD,
            "queues": _KEYWORD,
            "first_seen_at": _DATE,
            "last_seen_at": _DATE,
            "version": _STORED_KEYWORD,
            "host": _STORED_KEYWORD,
            "draining": _BOOLEAN,
            "drained_at": _DATE,
        },
    }


def batch_mappings() -> JsonDict:
    """Batch records: found by the leader's sweep (open ones: neither completed_at nor failed_at, oldest first)."""
    return {
        "dynamic": "strict",
        "_meta": _META,
        "properties": {
            "project": _KEYWORD,
            "id": _KEYWORD,
            "total": _INTEGER,
            "on_complete": _OPAQUE,
            "callback": _OPAQUE,
            "completed_at": _DATE,
            "failed_at": _DATE,
            "failure": _STORED_KEYWORD,
            "deleted": _INTEGER,
            "metadata": {"properties": {"created_at": _DATE, "modified_at": _DATE}},
        },
    }


# Settings


# The claim order. Each segment of the tasks index keeps its documents in it, so a claim search (sorted the
# same way, without total hit counts) stops after the first hits of each segment instead of sorting every
# claimable task. Index sorting is static: only an index created with it is sorted.
CLAIM_SORT: list[JsonDict] = [{"priority": "desc"}, {"run_at": "asc"}]
TASKS_INDEX_SORT: JsonDict = {"sort.field": ["priority", "run_at"], "sort.order": ["desc", "asc"]}
# Settings an existing index cannot take (`put_settings` refuses them): applied only when an index is created.
_STATIC_SETTINGS = frozenset({"number_of_shards", *TASKS_INDEX_SORT})


def tasks_settings(settings: ElasticsearchConfig) -> JsonDict:
    return {
        "number_of_shards": settings.shards,
        "number_of_replicas": settings.replicas,
        "refresh_interval": es_time(settings.refresh_interval),
        **TASKS_INDEX_SORT,
    }


def dynamic_settings(settings: JsonDict) -> JsonDict:
    """The part of an index's settings that `put_settings` can bring an existing index up to."""
    return {k: v for k, v in settings.items() if k not in _STATIC_SETTINGS}


def small_index_settings(settings: ElasticsearchConfig) -> JsonDict:
    """Recurring tasks, locks, queue settings, the timeline, projects, tokens, admissions and workers: one shard each
    (few documents, or few reads)."""
    return {"number_of_shards": 1, "number_of_replicas": settings.replicas}


# Templates: the indices get the right mapping even when something (a write after an accidental delete, a
# rollover) creates them without Tasques asking.


def _template(patterns: list[str], settings: JsonDict, mappings: JsonDict) -> JsonDict:
    return {
        "index_patterns": patterns,
        "priority": TEMPLATE_PRIORITY,
        "version": TEMPLATE_VERSION,
        "_meta": _META,
        "template": {"settings": settings, "mappings": mappings},
    }


def tasks_template_body(names: IndexNames, settings: ElasticsearchConfig) -> JsonDict:
    return _template([names.tasks], tasks_settings(settings), task_mappings())


def recurring_template_body(names: IndexNames, settings: ElasticsearchConfig) -> JsonDict:
    return _template([names.recurring], small_index_settings(settings), recurring_mappings())


def queues_template_body(names: IndexNames, settings: ElasticsearchConfig) -> JsonDict:
    return _template([names.queues], small_index_settings(settings), queue_settings_mappings())


def timeline_template_body(names: IndexNames, settings: ElasticsearchConfig) -> JsonDict:
    return _template([names.timeline], small_index_settings(settings), timeline_mappings())


def locks_template_body(names: IndexNames, settings: ElasticsearchConfig) -> JsonDict:
    return _template([names.locks], small_index_settings(settings), lock_mappings())


def projects_template_body(names: IndexNames, settings: ElasticsearchConfig) -> JsonDict:
    return _template([names.projects], small_index_settings(settings), project_mappings())


def tokens_template_body(names: IndexNames, settings: ElasticsearchConfig) -> JsonDict:
    return _template([names.tokens], small_index_settings(settings), token_mappings())


def admissions_template_body(names: IndexNames, settings: ElasticsearchConfig) -> JsonDict:
    return _template([names.admissions], small_index_settings(settings), admission_mappings())


def workers_template_body(names: IndexNames, settings: ElasticsearchConfig) -> JsonDict:
    return _template([names.workers], small_index_settings(settings), worker_mappings())


def batches_template_body(names: IndexNames, settings: ElasticsearchConfig) -> JsonDict:
    return _template([names.batches], small_index_settings(settings), batch_mappings())


def archive_settings(names: IndexNames, settings: ElasticsearchConfig, *, ilm: bool) -> JsonDict:
    """Archive indices: one shard each (rollover bounds their size); lifecycle settings when ILM runs them."""
    out: JsonDict = {"number_of_shards": 1, "number_of_replicas": settings.replicas}
    if ilm:
        out["index.lifecycle.name"] = settings.ilm_policy or names.archive_policy
        out["index.lifecycle.rollover_alias"] = names.archive_alias
    return out


def archive_template_body(names: IndexNames, settings: ElasticsearchConfig, *, ilm: bool) -> JsonDict:
    """The template every archive index (the bootstrap one and each rollover) is created from.

    It must not name the rollover alias itself: the alias is added when bootstrapping and moved by rollover.
    """
    return _template([names.archive_pattern], archive_settings(names, settings, ilm=ilm), archive_mappings())

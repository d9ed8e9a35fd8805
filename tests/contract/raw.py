"""A stored record's raw JSON, bypassing every model: read it as it is on disk, or rewrite it as an older version
or a bad disk left it."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable
from typing import Any

from tasques.domain.limits import DEFAULT_PROJECT
from tasques.store.base import Store
from tasques.store.elasticsearch.names import queue_doc_id, recurring_doc_id, task_doc_id
from tasques.store.elasticsearch.store import ElasticsearchStore
from tasques.store.sqlite.store import SqliteStore

Mutate = Callable[[dict[str, Any]], None]

# what -> (SQLite table, key column)
_TABLES = {"tasks": ("tasks", None), "recurring": ("recurring_tasks", "id"), "queues": ("queue_settings", "queue")}


def _sqlite_row(what: str, key: tuple[str, ...], project: str) -> tuple[str, str, tuple[str, ...]]:
    """(table, WHERE clause, params) of a record's row: the project is first in every key."""
    table, column = _TABLES[what]
    where = "project = ? AND queue = ? AND id = ?" if column is None else f"project = ? AND {column} = ?"
    return table, where, (project, *key)


def _es_doc(store: ElasticsearchStore, what: str, key: tuple[str, ...], project: str) -> tuple[str, str]:
    """(index, _id) of a record's document: the project is first in every _id."""
    if what == "tasks":
        return store.names.tasks, task_doc_id(project, *key)
    if what == "recurring":
        return store.names.recurring, recurring_doc_id(project, key[0])
    return store.names.queues, queue_doc_id(project, key[0])


async def stored_text(store: Store, what: str, key: tuple[str, ...], *, project: str = DEFAULT_PROJECT) -> str:
    """The record as the store holds it, bypassing every model: the SQLite row's body, or the `_source` of the
    Elasticsearch document (as JSON text). Keys as for `corrupt`."""
    if isinstance(store, SqliteStore):
        table, where, params = _sqlite_row(what, key, project)
        with contextlib.closing(sqlite3.connect(store._path)) as conn:
            (body,) = conn.execute(f"SELECT body FROM {table} WHERE {where}", params).fetchone()
        return str(body)
    assert isinstance(store, ElasticsearchStore)
    index, doc_id = _es_doc(store, what, key, project)
    return json.dumps((await store._client.get(index=index, id=doc_id)).body["_source"])


async def corrupt(
    store: Store, what: str, key: tuple[str, ...], mutate: Mutate, *, project: str = DEFAULT_PROJECT
) -> None:
    """Apply `mutate` to the stored JSON of a task (`key` = queue, id), recurring task (id) or queue settings
    (queue) of `project`."""
    if isinstance(store, SqliteStore):
        table, where, params = _sqlite_row(what, key, project)
        with sqlite3.connect(store._path) as conn:
            (body,) = conn.execute(f"SELECT body FROM {table} WHERE {where}", params).fetchone()
            doc = json.loads(body)
            mutate(doc)
            conn.execute(f"UPDATE {table} SET body = ? WHERE {where}", (json.dumps(doc), *params))
        return
    assert isinstance(store, ElasticsearchStore)
    index, doc_id = _es_doc(store, what, key, project)
    client = store._client
    source = (await client.get(index=index, id=doc_id)).body["_source"]
    mutate(source)
    await client.index(index=index, id=doc_id, document=source, refresh=True)
    if what == "tasks":
        await store.refresher.ensure_fresh()


def unparseable_duration(doc: dict[str, Any]) -> None:
    """A processing timeout beyond today's maximum: accepted by the stores, refused by the model."""
    doc["processing_timeout"] = "80000000h"

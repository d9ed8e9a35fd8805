"""Rewrite a stored record's raw JSON, bypassing every model: data as an older version or a bad disk left it."""

from __future__ import annotations

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


async def corrupt(store: Store, what: str, key: tuple[str, ...], mutate: Mutate) -> None:
    """Apply `mutate` to the stored JSON of a task (`key` = queue, id), recurring task (id) or queue settings."""
    if isinstance(store, SqliteStore):
        table, column = _TABLES[what]
        where, params = ("queue = ? AND id = ?", key) if column is None else (f"{column} = ?", key)
        with sqlite3.connect(store._path) as conn:
            (body,) = conn.execute(f"SELECT body FROM {table} WHERE {where}", params).fetchone()
            doc = json.loads(body)
            mutate(doc)
            conn.execute(f"UPDATE {table} SET body = ? WHERE {where}", (json.dumps(doc), *params))
        return
    assert isinstance(store, ElasticsearchStore)
    index = {"tasks": store.names.tasks, "recurring": store.names.recurring, "queues": store.names.queues}[what]
    # The records of the default project (what every test that corrupts one writes).
    if what == "tasks":
        doc_id = task_doc_id(DEFAULT_PROJECT, *key)
    elif what == "recurring":
        doc_id = recurring_doc_id(DEFAULT_PROJECT, key[0])
    else:
        doc_id = queue_doc_id(DEFAULT_PROJECT, key[0])
    client = store._client
    source = (await client.get(index=index, id=doc_id)).body["_source"]
    mutate(source)
    await client.index(index=index, id=doc_id, document=source, refresh=True)
    if what == "tasks":
        await store.refresher.ensure_fresh()


def unparseable_duration(doc: dict[str, Any]) -> None:
    """A processing timeout beyond today's maximum: accepted by the stores, refused by the model."""
    doc["processing_timeout"] = "80000000h"

"""Encryption at rest over HTTP: `sensitive: true` tasks and HTTP-target secrets are sealed in the store, shown
in plaintext to callers, and `sensitive: true` is refused by a server without encryption keys."""

from __future__ import annotations

import base64
import os
import sqlite3
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import Any

from tasques.api.keys import RECURRING
from tasques.service.clock import ManualClock
from tests.api.conftest import Client, MakeClient, assert_error, call, claim_one, create_task, get_task, list_all

KEYS = {"encryption": {"keys": [{"id": "k1", "key": base64.b64encode(os.urandom(32)).decode()}]}}
SECRET_ARGS = {"card": "4111-args-secret"}
SECRET_CONTEXT = {"trace": "context-secret"}
PEM_KEY = "-----BEGIN PRIVATE KEY-----\nTUlJRXZRSUJBREFOQmdr\n-----END PRIVATE KEY-----\n"
HTTP = {
    "url": "https://127.0.0.1:9/hook",
    "headers": {"Authorization": "Bearer header-secret"},
    "body": {"payload": "body-secret"},
    "tls": {"cert": "client.pem", "key": PEM_KEY},
}


def stored_bodies(tmp_path: Path, table: str = "tasks") -> str:
    """Every stored record of `table` as the SQLite file holds it."""
    with closing(sqlite3.connect(tmp_path / "t.db")) as conn:
        return "\n".join(str(body) for (body,) in conn.execute(f"SELECT body FROM {table}"))


def assert_sealed(text: str, *secrets: str) -> None:
    assert "$sealed:k1:" in text
    for secret in secrets:
        assert secret not in text


async def test_sensitive_is_refused_without_encryption_keys(client: Client) -> None:
    body = await call(client, "POST", "/tasques", status=400, body={"queue": "q", "kind": "k", "sensitive": True})
    assert_error(body, "sensitive")
    assert "encryption.keys" in body["details"][0]["problem"]
    definition = {"queue": "q", "kind": "k", "sensitive": True}
    recurring = {"id": "r", "schedule_expression": "@every 1m", "task_definition": definition}
    body = await call(client, "POST", "/recurring_tasques", status=400, body=recurring)
    assert_error(body, "task_definition.sensitive")
    # HTTP-target tasks still work without keys (their secrets are stored as before).
    await create_task(client, id="h", http_request={**HTTP, "tls": None})


async def test_a_sensitive_task_is_sealed_at_rest_and_shown_in_plaintext(
    make_client: MakeClient, tmp_path: Path
) -> None:
    client = await make_client(KEYS)
    created = await create_task(client, id="s", sensitive=True, args=SECRET_ARGS, context=SECRET_CONTEXT)
    assert (created["sensitive"], created["args"], created["context"]) == (True, SECRET_ARGS, SECRET_CONTEXT)
    assert_sealed(stored_bodies(tmp_path), "4111-args-secret", "context-secret")
    fetched = await get_task(client, "q", "s")
    assert (fetched["args"], fetched["context"]) == (SECRET_ARGS, SECRET_CONTEXT)
    claimed = await claim_one(client, "q")
    assert (claimed["args"], claimed["context"]) == (SECRET_ARGS, SECRET_CONTEXT)
    assert [t["args"] for t in await list_all(client, {"queue": "q"})] == [SECRET_ARGS]
    assert_sealed(stored_bodies(tmp_path), "4111-args-secret", "context-secret")


async def test_an_http_tasks_secrets_are_sealed_and_its_tls_key_stays_redacted(
    make_client: MakeClient, tmp_path: Path
) -> None:
    client = await make_client({**KEYS, "dispatch": {"tls_files_dir": "/etc/tasques", "enabled": False}})
    created = await create_task(client, id="h", http_request=HTTP)
    shown: dict[str, Any] = created["http_request"]
    assert (shown["headers"], shown["body"]) == (HTTP["headers"], HTTP["body"])
    assert shown["tls"]["key"] == "<redacted>"
    assert (await get_task(client, "q", "h"))["http_request"]["tls"]["key"] == "<redacted>"
    assert_sealed(stored_bodies(tmp_path), "header-secret", "Authorization", "body-secret", "TUlJRXZRSUJBREFOQmdr")


async def test_a_sensitive_recurring_task_enqueues_sensitive_tasks(
    make_client: MakeClient, tmp_path: Path, clock: ManualClock
) -> None:
    client = await make_client(KEYS)
    definition = {"queue": "rq", "kind": "tick", "args": SECRET_ARGS, "sensitive": True}
    body = {"id": "r", "schedule_expression": "@every 1m", "task_definition": definition}
    created = await call(client, "POST", "/recurring_tasques", status=201, body=body)
    assert (created["task_definition"]["sensitive"], created["task_definition"]["args"]) == (True, SECRET_ARGS)
    assert_sealed(stored_bodies(tmp_path, "recurring_tasks"), "4111-args-secret")
    clock.advance(timedelta(minutes=1))
    assert await client.app[RECURRING].enqueue_due() == 1
    [task] = await list_all(client, {"recurring_task_id": "r"})
    assert (task["sensitive"], task["args"]) == (True, SECRET_ARGS)
    assert_sealed(stored_bodies(tmp_path), "4111-args-secret")

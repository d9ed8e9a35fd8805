"""Encryption at rest, on every store: what the store holds has no plaintext of a sealed field, reads give it back.

The raw record is read around every model (the SQLite row, the Elasticsearch `_source`; see raw.py).
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import pytest

from tasques.domain.http_target import HttpRequest, TaskTarget, TlsOptions
from tasques.domain.recurring import RecurringTask, TaskDefinition
from tasques.domain.task import Metadata, NewTask, Task
from tasques.store.base import Store, TaskChange, TaskFilter
from tasques.store.sealing import PREFIX, Sealer, Unsealable
from tests.contract import T0, claim_as, ts
from tests.contract.conftest import CONTRACT_KEY
from tests.contract.raw import corrupt, stored_text

PEM_KEY = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n"
SECRETS = ("args-secret", "context-secret", "header-secret", "body-secret", "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC")
REQUEST = HttpRequest(
    url="https://hooks.example/endpoint",
    headers={"Authorization": "Bearer header-secret"},
    body={"payload": "body-secret"},
    tls=TlsOptions(cert="client.pem", key=PEM_KEY),
)


def sensitive_task(id: str, *, http: bool = True, sensitive: bool = True) -> Task:
    new = NewTask(
        queue="q",
        kind="k",
        id=id,
        run_at=T0,
        retry_times=3,
        processing_timeout=timedelta(minutes=1),
        args={"password": "args-secret"},
        context={"note": "context-secret"},
        http_request=REQUEST if http else None,
        sensitive=sensitive,
    )
    return Task.create(new, T0)


def assert_no_plaintext(text: str, *secrets: str) -> None:
    for secret in secrets or SECRETS:
        assert secret not in text, f"{secret!r} is stored in plaintext"
    assert PREFIX in text


def same(a: Task, b: Task) -> bool:
    strip = {"metadata": {"version"}}
    return a.model_dump(exclude=strip) == b.model_dump(exclude=strip)


async def test_a_sensitive_http_task_is_stored_sealed_and_read_in_plaintext(store: Store) -> None:
    task = sensitive_task("t1")
    await store.insert_task(task)
    assert_no_plaintext(await stored_text(store, "tasks", ("q", "t1")))
    assert same(await store.get_task("q", "t1"), task)
    [listed] = (await store.list_tasks(TaskFilter(queue="q"), 10, None)).tasks
    assert same(listed, task)
    # Claims rewrite the whole task: still sealed, still opened for the claimer.
    [claimed] = await store.claim_tasks(["q"], ts(1), 1, claim_as("w", ts(1)), TaskTarget.HTTP)
    assert claimed.http_request == REQUEST
    assert claimed.args == {"password": "args-secret"}
    assert_no_plaintext(await stored_text(store, "tasks", ("q", "t1")))
    [done] = await store.modify_tasks([TaskChange("q", "t1", lambda t: t.done("w", {"ok": True}, ts(2), "c1"))])
    assert isinstance(done, Task)
    assert_no_plaintext(await stored_text(store, "tasks", ("q", "t1")))
    # The archive keeps the sealed copy, and it still opens (same record, same associated data).
    assert await store.archive_finished(ts(3), 10) == 1
    archived = await store.get_task("q", "t1")
    assert (archived.args, archived.http_request) == ({"password": "args-secret"}, REQUEST)


async def test_only_the_secrets_of_a_task_are_sealed(store: Store) -> None:
    # Not sensitive: args and context stay plain (as before); an HTTP request's headers, body and key never do.
    await store.insert_task(sensitive_task("plain", sensitive=False))
    text = await stored_text(store, "tasks", ("q", "plain"))
    assert "args-secret" in text
    assert "context-secret" in text
    assert_no_plaintext(text, "header-secret", "body-secret", "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC")
    assert "https://hooks.example/endpoint" in text
    # A pull task with nothing sensitive is stored exactly as it always was.
    await store.insert_task(sensitive_task("pull", http=False, sensitive=False))
    assert PREFIX not in await stored_text(store, "tasks", ("q", "pull"))
    await store.insert_task(sensitive_task("pull-sensitive", http=False))
    assert_no_plaintext(await stored_text(store, "tasks", ("q", "pull-sensitive")), "args-secret", "context-secret")
    assert same(await store.get_task("q", "pull-sensitive"), sensitive_task("pull-sensitive", http=False))


async def test_a_recurring_definition_is_stored_sealed_and_read_in_plaintext(store: Store) -> None:
    definition = TaskDefinition(
        queue="q",
        kind="k",
        args={"a": "args-secret"},
        context={"c": "context-secret"},
        http_request=REQUEST,
        sensitive=True,
    )
    rt = RecurringTask(
        id="r",
        schedule_expression="@every 1m",
        task_definition=definition,
        metadata=Metadata(created_at=T0, modified_at=T0),
    )
    stored = await store.insert_recurring(rt)
    assert_no_plaintext(await stored_text(store, "recurring", ("r",)))
    assert (await store.get_recurring("r")).task_definition == definition
    assert [r.task_definition for r in await store.list_recurring()] == [definition]
    await store.update_recurring(stored.handled(ts(60)))
    assert_no_plaintext(await stored_text(store, "recurring", ("r",)))
    assert (await store.delete_recurring("r")).task_definition == definition


async def test_an_unknown_key_makes_a_record_unreadable_without_failing_the_others(store: Store) -> None:
    await store.insert_task(sensitive_task("sealed-k1", http=False))
    await store.insert_task(sensitive_task("plain", http=False, sensitive=False))
    keyed: Any = store  # both stores hold their sealer in `.sealer`: give this one another keyring
    keyed.sealer = Sealer([("other", os.urandom(32))])
    with pytest.raises(Unsealable, match="contract-k1"):
        await store.get_task("q", "sealed-k1")
    # A claim passes over it (noted as unreadable) and takes the others.
    claimed = await store.claim_tasks(["q"], ts(1), 10, claim_as("w", ts(1)))
    assert [t.id for t in claimed] == ["plain"]
    assert keyed.unreadable.skipped >= 1
    # A batch write fails that slot alone.
    slots = await store.modify_tasks(
        [
            TaskChange("q", "sealed-k1", lambda t: t.cancelled(ts(2))),
            TaskChange("q", "plain", lambda t: t.cancelled(ts(2))),
        ]
    )
    assert isinstance(slots[0], Unsealable)
    assert isinstance(slots[1], Task)


async def test_rotation_keeps_old_records_readable_and_seals_new_writes_with_the_current_key(store: Store) -> None:
    old = await store.insert_task(sensitive_task("old"))
    keyed: Any = store
    keyed.sealer = Sealer([CONTRACT_KEY, ("k2", os.urandom(32))])  # k2 added, and current
    assert same(await store.get_task("q", "old"), old)
    assert f"{PREFIX}contract-k1:" in await stored_text(store, "tasks", ("q", "old"))
    # Any rewrite of the old record seals it with k2.
    updated = await store.update_task((await store.get_task("q", "old")).run_now(ts(1)))
    text = await stored_text(store, "tasks", ("q", "old"))
    assert f"{PREFIX}k2:" in text
    assert f"{PREFIX}contract-k1:" not in text
    assert same(await store.get_task("q", "old"), updated)
    await store.insert_task(sensitive_task("new"))
    assert f"{PREFIX}contract-k1:" not in await stored_text(store, "tasks", ("q", "new"))


async def test_a_ciphertext_copied_from_another_record_does_not_open(store: Store) -> None:
    await store.insert_task(sensitive_task("mine"))
    await store.insert_task(sensitive_task("theirs"))
    # Equal plaintexts, so only the associated data (the record's identity) tells the two ciphertexts apart.
    donor: dict[str, Any] = {}

    def take(doc: dict[str, Any]) -> None:
        donor.update(args=doc["args"], http_request=doc["http_request"])

    await corrupt(store, "tasks", ("q", "theirs"), take)
    await corrupt(store, "tasks", ("q", "mine"), lambda doc: doc.update(args=donor["args"]))
    with pytest.raises(Unsealable, match="not this record's"):
        await store.get_task("q", "mine")
    await corrupt(store, "tasks", ("q", "theirs"), lambda doc: doc.update(http_request=donor["http_request"]))
    assert same(await store.get_task("q", "theirs"), sensitive_task("theirs"))  # its own, put back: opens

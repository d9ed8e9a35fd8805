"""The Sealer (AES-256-GCM over a keyring) and which fields of a record it seals."""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tasques.domain.http_target import HttpRequest, TlsOptions
from tasques.domain.recurring import RecurringTask, TaskDefinition
from tasques.domain.task import Metadata, NewTask, Task
from tasques.store.sealed_records import dump_json, load_json, needs_sealing
from tasques.store.sealing import PREFIX, Sealer, SealingUnavailable, Unsealable, key_id_of

T0 = datetime(2024, 1, 1, tzinfo=UTC)
K1, K2 = os.urandom(32), os.urandom(32)
AAD = b"record-1"
PEM_KEY = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleQ==\n-----END PRIVATE KEY-----\n"


def task(
    id: str = "t",
    *,
    sensitive: bool = False,
    args: dict[str, Any] | None = None,
    http: HttpRequest | None = None,
    project: str = "default",
) -> Task:
    new = NewTask(
        queue="q",
        kind="k",
        id=id,
        run_at=T0,
        retry_times=1,
        processing_timeout=timedelta(minutes=1),
        args=args,
        context={"ctx": "context-secret"} if sensitive else None,
        http_request=http,
        sensitive=sensitive,
        project=project,
    )
    return Task.create(new, T0)


HTTP = HttpRequest(
    url="https://hooks.example/x",
    headers={"Authorization": "Bearer header-secret"},
    body={"b": "body-secret"},
    tls=TlsOptions(cert="client.pem", key=PEM_KEY),
)


# The Sealer


def test_a_sealed_value_opens_to_the_same_json_value_and_hides_it() -> None:
    sealer = Sealer([("k1", K1)])
    value = {"password": "hunter2", "n": [1, 2.5, None, "é"]}
    token = sealer.seal(value, AAD)
    assert token.startswith(f"{PREFIX}k1:")
    assert "hunter2" not in token
    assert sealer.unseal(token, AAD) == value
    # A fresh nonce each time: equal plaintexts do not give equal ciphertexts.
    assert sealer.seal(value, AAD) != token


def test_rotation_old_values_stay_readable_and_new_seals_use_the_current_key() -> None:
    old = Sealer([("k1", K1)])
    sealed_with_k1 = old.seal({"a": 1}, AAD)
    rotated = Sealer([("k1", K1), ("k2", K2)])  # the last listed is current
    assert rotated.current == "k2"
    assert rotated.unseal(sealed_with_k1, AAD) == {"a": 1}
    assert key_id_of(rotated.seal({"a": 1}, AAD)) == "k2"
    # `current` can name any listed key (e.g. to roll back a rotation).
    assert key_id_of(Sealer([("k1", K1), ("k2", K2)], current="k1").seal(1, AAD)) == "k1"


def test_an_unknown_key_id_is_a_clear_error() -> None:
    token = Sealer([("k1", K1)]).seal("x", AAD)
    with pytest.raises(Unsealable, match=r"key 'k1'.*not among the configured keys \['k2'\]"):
        Sealer([("k2", K2)]).unseal(token, AAD)


def test_a_key_listed_under_the_old_id_but_different_material_does_not_open() -> None:
    token = Sealer([("k1", K1)]).seal("x", AAD)
    with pytest.raises(Unsealable, match="does not open"):
        Sealer([("k1", K2)]).unseal(token, AAD)


@pytest.mark.parametrize("position", [0, 14, -1])  # the nonce, the ciphertext, the tag
def test_tampering_is_detected(position: int) -> None:
    sealer = Sealer([("k1", K1)])
    token = sealer.seal({"amount": 100}, AAD)
    raw = bytearray(base64.b64decode(token.split(":", 2)[2]))
    raw[position] ^= 0x01
    tampered = f"{PREFIX}k1:{base64.b64encode(bytes(raw)).decode()}"
    with pytest.raises(Unsealable):
        sealer.unseal(tampered, AAD)


@pytest.mark.parametrize("token", [f"{PREFIX}k1", f"{PREFIX}k1:not base64!", f"{PREFIX}k1:AAAA", "plain text"])
def test_a_malformed_sealed_value_is_unsealable(token: str) -> None:
    with pytest.raises(Unsealable):
        Sealer([("k1", K1)]).unseal(token, AAD)


def test_a_value_sealed_for_one_record_does_not_open_for_another() -> None:
    sealer = Sealer([("k1", K1)])
    with pytest.raises(Unsealable, match="not this record's"):
        sealer.unseal(sealer.seal("x", b"record-1"), b"record-2")


@pytest.mark.parametrize(
    ("keys", "current", "problem"),
    [
        ([], None, "at least one key"),
        ([("k1", b"short")], None, "32 bytes"),
        ([("k1", K1), ("k1", K2)], None, "twice"),
        ([("bad id", K1)], None, "key id"),
        ([("k1", K1)], "k9", "not among the keys"),
    ],
)
def test_a_bad_keyring_is_refused(keys: list[tuple[str, bytes]], current: str | None, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        Sealer(keys, current)


def test_the_sealer_never_shows_key_material() -> None:
    sealer = Sealer([("k1", K1), ("k2", K2)])
    shown = repr(sealer) + str(sealer)
    assert "k1" in shown
    assert "k2" in shown
    for key in (K1, K2):
        assert base64.b64encode(key).decode() not in shown
        assert key.hex() not in shown


# Records


def stored(record: Task | RecurringTask, sealer: Sealer | None) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(dump_json(record, sealer))
    return doc


def test_a_sensitive_tasks_args_and_context_and_an_http_requests_secrets_are_sealed() -> None:
    sealer = Sealer([("k1", K1)])
    original = task(sensitive=True, args={"pw": "args-secret"}, http=HTTP)
    text = dump_json(original, sealer)
    for secret in ("args-secret", "context-secret", "header-secret", "Authorization", "body-secret", "c2VjcmV0"):
        assert secret not in text
    doc = json.loads(text)
    # What stores index or show stays plain.
    assert (doc["state"], doc["queue"], doc["sensitive"]) == ("queued", "q", True)
    assert doc["http_request"]["url"] == "https://hooks.example/x"
    assert doc["http_request"]["tls"] == {"ca": None, "cert": "client.pem", "insecure_skip_verify": False}
    assert load_json(Task, text, sealer) == original


def test_a_task_that_is_not_sensitive_keeps_its_args_plain() -> None:
    sealer = Sealer([("k1", K1)])
    plain = task(args={"a": 1})
    assert not needs_sealing(plain)
    assert dump_json(plain, sealer) == plain.model_dump_json()
    # Plaintext that merely looks like a sealed envelope is left alone.
    lookalike = task(
        args={"$sealed": f"{PREFIX}k1:AAAA"}, http=HttpRequest(url="https://x.example/", headers={"$sealed": "v"})
    )
    assert load_json(Task, dump_json(lookalike, sealer), sealer) == lookalike


def test_without_keys_http_secrets_stay_plaintext_and_a_sensitive_task_is_refused() -> None:
    http_task = task(http=HTTP)
    assert stored(http_task, None)["http_request"]["headers"] == {"Authorization": "Bearer header-secret"}
    assert load_json(Task, dump_json(http_task, None), None) == http_task
    with pytest.raises(SealingUnavailable, match="no encryption keys"):
        dump_json(task(sensitive=True, args={"pw": "x"}), None)


def test_a_sealed_record_read_without_keys_says_so() -> None:
    text = dump_json(task(sensitive=True, args={"pw": "x"}), Sealer([("k1", K1)]))
    with pytest.raises(Unsealable, match="sealed with key 'k1', and no encryption keys are configured"):
        load_json(Task, text, None)


def test_ciphertext_swapped_between_two_records_is_rejected() -> None:
    sealer = Sealer([("k1", K1)])
    mine = stored(task("mine", sensitive=True, args={"who": "mine"}, http=HTTP), sealer)
    theirs = stored(task("theirs", sensitive=True, args={"who": "theirs"}, http=HTTP), sealer)
    for field in ("args", "context"):
        swapped = {**mine, field: theirs[field]}
        with pytest.raises(Unsealable):
            load_json(Task, json.dumps(swapped), sealer)
    swapped = {**mine, "http_request": theirs["http_request"]}
    with pytest.raises(Unsealable):
        load_json(Task, json.dumps(swapped), sealer)
    # Within one record, one field's ciphertext does not open as another's.
    with pytest.raises(Unsealable):
        load_json(Task, json.dumps({**mine, "args": mine["context"]}), sealer)


def test_the_same_ids_in_another_project_do_not_open_each_others_values() -> None:
    sealer = Sealer([("k1", K1)])
    ours = stored(task(sensitive=True, args={"pw": "x"}, project="alpha"), sealer)
    other = stored(task(sensitive=True, args={"pw": "y"}, project="beta"), sealer)
    with pytest.raises(Unsealable):
        load_json(Task, json.dumps({**ours, "args": other["args"]}), sealer)


def test_a_recurring_definitions_secrets_are_sealed_and_its_tasks_are_sensitive() -> None:
    sealer = Sealer([("k1", K1)])
    definition = TaskDefinition(queue="q", kind="k", args={"pw": "args-secret"}, http_request=HTTP, sensitive=True)
    rt = RecurringTask(
        id="r",
        schedule_expression="@every 1m",
        task_definition=definition,
        metadata=Metadata(created_at=T0, modified_at=T0),
    )
    text = dump_json(rt, sealer)
    for secret in ("args-secret", "header-secret", "body-secret", "c2VjcmV0"):
        assert secret not in text
    assert load_json(RecurringTask, text, sealer) == rt
    # A recurring task's ciphertext does not open as a task's of the same id.
    doc = json.loads(text)
    with pytest.raises(Unsealable):
        load_json(
            Task,
            json.dumps({**stored(task("r", sensitive=True, args={}), sealer), "args": doc["task_definition"]["args"]}),
            sealer,
        )
    new = rt.new_task(T0, 1, timedelta(minutes=1))
    assert new.sensitive
    assert new.args == {"pw": "args-secret"}

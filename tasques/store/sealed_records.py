"""Which fields of a stored task or recurring task are sealed, on the JSON level both stores serialize.

Sealed, each bound (associated data) to the record's identity and the field's name:
- `args` and `context` of a task created `sensitive` (and of a recurring task's definition that is): each
  becomes a sealed string in place. Plaintext ones are objects or null, so a string there is always sealed.
- an HTTP request's secrets: its `headers`, `body` and inline `tls.key` leave the request and one sealed
  string under the key `$sealed` holds them. `HttpRequest` forbids extra fields, so no plaintext request has it.
Everything else (state, times, the URL, results) stays plain: stores index it, and it is no secret of the
producer's. Without a sealer HTTP requests are stored in plaintext, as before; a sensitive record is refused
(`SealingUnavailable`): the service refuses `sensitive: true` before it gets here.

Stores seal right after a model is dumped and unseal right before one is validated, so the domain never sees
a sealed value and callers always see plaintext. Records that need no sealing keep the stores' fast paths.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel
from pydantic_core import from_json, to_json

from tasques.domain.batch import Batch
from tasques.domain.limits import DEFAULT_PROJECT
from tasques.domain.recurring import RecurringTask, TaskDefinition
from tasques.domain.task import Task
from tasques.store.sealing import PREFIX, Sealer, SealingUnavailable, Unsealable, is_sealed, key_id_of

JsonDict = dict[str, Any]
_HTTP_SECRETS = "$sealed"  # the key, inside a stored http_request, of its sealed headers/body/tls key
_MARK = PREFIX.rstrip(":")  # in every JSON text holding a sealed value (and rarely in one that holds none)
_AAD_VERSION = b"tasques-sealed-v1\n"
M = TypeVar("M", bound=BaseModel)


Sealable = Task | RecurringTask | Batch


def _body_of(record: Sealable) -> Task | TaskDefinition | None:
    """What holds the sealed fields: the task, a recurring task's definition, a batch's `on_complete`."""
    if isinstance(record, RecurringTask):
        return record.task_definition
    if isinstance(record, Batch):
        return record.on_complete
    return record


def needs_sealing(record: Sealable) -> bool:
    """Whether `record` has anything to seal (false: the store may dump it as it always did)."""
    body = _body_of(record)
    if body is None:
        return False
    request = body.http_request
    has_secrets = request is not None and bool(
        request.headers or request.body is not None or (request.tls is not None and request.tls.key is not None)
    )
    return body.sensitive or has_secrets


def seal_record(record: Sealable, doc: JsonDict, sealer: Sealer | None) -> JsonDict:
    """`doc` (the record's JSON dump) with its sensitive fields sealed, in place; returned for chaining."""
    if isinstance(record, Batch):
        if isinstance(doc.get("on_complete"), dict):
            _seal_body(doc["on_complete"], _batch_aad(doc), sealer, "on_complete task")
    elif isinstance(record, RecurringTask):
        _seal_body(doc["task_definition"], _recurring_aad(doc), sealer, "task_definition")
    elif isinstance(record, Task):
        _seal_body(doc, _task_aad(doc), sealer, "task")
    return doc


def unseal_task(doc: JsonDict, sealer: Sealer | None) -> JsonDict:
    """A stored task's JSON with its sealed fields opened, in place. `Unsealable` if one does not open."""
    _unseal_body(doc, _task_aad(doc), sealer)
    return doc


def unseal_recurring(doc: JsonDict, sealer: Sealer | None) -> JsonDict:
    definition = doc.get("task_definition")
    if isinstance(definition, dict):
        _unseal_body(definition, _recurring_aad(doc), sealer)
    return doc


def unseal_batch(doc: JsonDict, sealer: Sealer | None) -> JsonDict:
    definition = doc.get("on_complete")
    if isinstance(definition, dict):
        _unseal_body(definition, _batch_aad(doc), sealer)
    return doc


_UNSEAL = {Task: unseal_task, RecurringTask: unseal_recurring, Batch: unseal_batch}


def dump_json(record: Sealable, sealer: Sealer | None) -> str:
    """The stored JSON text of a record (SQLite's body)."""
    if not needs_sealing(record) or (sealer is None and not _sensitive(record)):
        return record.model_dump_json()
    doc = seal_record(record, record.model_dump(mode="json"), sealer)
    return to_json(doc).decode()


def load_json(model: type[M], body: str | bytes, sealer: Sealer | None) -> M:
    """A record from its stored JSON text; what holds no sealed value is validated straight from the text."""
    text = body.decode() if isinstance(body, bytes) else body
    unseal = _UNSEAL.get(model)
    if _MARK not in text or unseal is None:
        return model.model_validate_json(text)
    return model.model_validate(unseal(from_json(text), sealer))


def _sensitive(record: Sealable) -> bool:
    body = _body_of(record)
    return body is not None and body.sensitive


def _task_aad(doc: JsonDict) -> list[Any]:
    return ["task", doc.get("project", DEFAULT_PROJECT), doc.get("queue"), doc.get("id")]


def _recurring_aad(doc: JsonDict) -> list[Any]:
    return ["recurring", doc.get("project", DEFAULT_PROJECT), doc.get("id")]


def _batch_aad(doc: JsonDict) -> list[Any]:
    return ["batch", doc.get("project", DEFAULT_PROJECT), doc.get("id")]


def _aad(identity: list[Any], field: str) -> bytes:
    # JSON of a list: no choice of names can make two identities (or fields) encode alike.
    return _AAD_VERSION + to_json([*identity, field])


def _seal_body(body: JsonDict, identity: list[Any], sealer: Sealer | None, what: str) -> None:
    """Seal, in `body` (a task, or a recurring task's definition), what must be."""
    if body.get("sensitive"):
        if sealer is None:
            raise SealingUnavailable(f"a sensitive {what} cannot be stored: no encryption keys are configured")
        for field in ("args", "context"):
            if body.get(field) is not None:
                body[field] = sealer.seal(body[field], _aad(identity, field))
    request = body.get("http_request")
    if sealer is None or not isinstance(request, dict):
        return
    secrets: JsonDict = {}
    if request.get("headers"):
        secrets["headers"] = request.pop("headers")
    if request.get("body") is not None:
        secrets["body"] = request.pop("body")
    tls = request.get("tls")
    if isinstance(tls, dict) and tls.get("key") is not None:
        secrets["tls_key"] = tls.pop("key")
    if secrets:
        request[_HTTP_SECRETS] = sealer.seal(secrets, _aad(identity, "http_request"))


def _unseal_body(body: JsonDict, identity: list[Any], sealer: Sealer | None) -> None:
    for field in ("args", "context"):
        value = body.get(field)
        if isinstance(value, str) and is_sealed(value):
            body[field] = _open(sealer, value).unseal(value, _aad(identity, field))
    request = body.get("http_request")
    if not isinstance(request, dict) or _HTTP_SECRETS not in request:
        return
    token = request.pop(_HTTP_SECRETS)
    if not isinstance(token, str):
        raise Unsealable("the sealed secrets of an HTTP request are not a sealed value")
    secrets = _open(sealer, token).unseal(token, _aad(identity, "http_request"))
    if not isinstance(secrets, dict):
        raise Unsealable("the sealed secrets of an HTTP request are not an object")
    if "headers" in secrets:
        request["headers"] = secrets["headers"]
    if "body" in secrets:
        request["body"] = secrets["body"]
    if "tls_key" in secrets:
        tls = request.get("tls")
        if not isinstance(tls, dict):
            raise Unsealable("an HTTP request's sealed TLS key has no tls options to go into")
        tls["key"] = secrets["tls_key"]


def _open(sealer: Sealer | None, token: object) -> Sealer:
    if sealer is None:
        which = f" with key {key_id_of(token)!r}" if isinstance(token, str) else ""
        raise Unsealable(f"the record holds values sealed{which}, and no encryption keys are configured")
    return sealer

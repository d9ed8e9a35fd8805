"""Small request/response helpers shared by the route modules.

Every request value is read here: bodies (strict JSON, `application/json` only), path parameters and the
listing filters' names, so each is validated by the same rules wherever it appears.
"""

from __future__ import annotations

import json
import re
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, TypeAdapter, ValidationError

from tasques.api.access_control import project_of
from tasques.domain.errors import FieldProblem, InvalidInput
from tasques.domain.http_target import REDACT_SECRETS
from tasques.domain.limits import CLAIM_ID_MAX_LENGTH, CLAIM_ID_PATTERN, Identifier, Kind, QueueName, RecurringId
from tasques.domain.ref import QueueRef
from tasques.log_fields import about

WORKER_ID_HEADER = "X-TASQUES-WORKER-ID"
WORKER_ID_MAX_LENGTH = 256
# Optional on claims and report/done/failed/unclaim: what the worker says it is (the worker registry shows it).
WORKER_VERSION_HEADER = "X-TASQUES-WORKER-VERSION"
WORKER_HOST_HEADER = "X-TASQUES-WORKER-HOST"
WORKER_INFO_MAX_LENGTH = 200
# On responses to a worker that is put to drain.
WORKER_DRAINING_HEADER = "X-TASQUES-WORKER-DRAINING"
# Optional on report/done/failed/unclaim: `last_claimed.claim_id` of the claim the caller holds.
CLAIM_ID_HEADER = "X-TASQUES-CLAIM-ID"
_CLAIM_ID = re.compile(CLAIM_ID_PATTERN)
JSON_CONTENT_TYPE = "application/json"

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

QUEUE_NAME: TypeAdapter[str] = TypeAdapter(QueueName)
IDENTIFIER: TypeAdapter[str] = TypeAdapter(Identifier)
RECURRING_ID: TypeAdapter[str] = TypeAdapter(RecurringId)
KIND: TypeAdapter[str] = TypeAdapter(Kind)

# Numbers no store keeps faithfully: NaN/Infinity (not JSON at all), floats beyond a double, integers longer
# than Elasticsearch's parser takes. The bytes are scanned first; only a suspect body is parsed twice.
_MAX_DIGITS = 300
_SUSPECT = re.compile(rb"NaN|Infinity|[0-9]{%d,}|[eE][+-]?[0-9]{3,}" % (_MAX_DIGITS + 1))


class UnsupportedMediaType(Exception):
    """A request body that is not `application/json` (mapped to 415 in `tasques.api.errors`)."""


def problems_of(err: ValidationError, prefix: str = "") -> list[FieldProblem]:
    """Each pydantic error as a problem naming its field by dotted path."""
    problems = []
    for e in err.errors(include_url=False):
        loc = ".".join(str(p) for p in e["loc"])
        field = f"{prefix}.{loc}" if prefix and loc else (prefix or loc or "body")
        problems.append(FieldProblem(field, e["msg"]))
    return problems


class _BadNumber(ValueError):
    pass


def _refuse_constant(text: str) -> float:
    raise _BadNumber(text)


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_DIGITS:
        raise _BadNumber(text)
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _BadNumber(text)
    return value


def _check_numbers(raw: bytes) -> None:
    if _SUSPECT.search(raw) is None:
        return
    try:
        json.loads(raw, parse_constant=_refuse_constant, parse_int=_parse_int, parse_float=_parse_float)
    except _BadNumber:
        problem = f"numbers must be finite and at most {_MAX_DIGITS} digits long (NaN and Infinity are not JSON)"
        raise InvalidInput("invalid request", [FieldProblem("body", problem)]) from None
    except (ValueError, RecursionError):
        return  # not JSON, or nested too deep: the model's parser reports it


async def read_body(request: web.Request, model: type[M], *, optional: bool = False) -> M:
    """Parse the JSON body strictly into `model` (no string-to-number or string-to-bool coercion, at any
    depth); an absent body counts as `{}` where the body is optional, whatever its content type."""
    raw = await request.read()
    if not raw.strip():
        if optional:
            return model.model_validate({})
        raise InvalidInput("a JSON body is required", [FieldProblem("body", "missing")])
    if request.content_type != JSON_CONTENT_TYPE:
        # Browsers send text/plain and form types cross-origin without asking: never treat those as JSON.
        raise UnsupportedMediaType(f"the request body must be {JSON_CONTENT_TYPE}, not {request.content_type}")
    _check_numbers(raw)
    try:
        return model.model_validate_json(raw, strict=True)
    except ValidationError as e:
        # Only here is a ValidationError the client's: anywhere else it is the server's own fault (a 500).
        raise InvalidInput("invalid request", problems_of(e)) from None


# A whole-number query parameter: ASCII digits only ("²".isdigit() is true), few enough that int() is cheap.
DIGITS = re.compile(r"[0-9]{1,9}")


def query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter: ASCII digits only ("²".isdigit() is true, "+5" and " 5" are refused), from
    `low` to `high`, else a 400 naming it."""
    text = request.query.get(name)
    if text is None:
        return default
    if DIGITS.fullmatch(text) is None or not low <= int(text) <= high:
        raise InvalidInput(f"invalid {name}", [FieldProblem(name, f"must be a whole number from {low} to {high}")])
    return int(text)


def check_name(value: str, adapter: TypeAdapter[str], field: str) -> str:
    """`value` if it is a valid name of that kind, else a 400 naming `field`."""
    try:
        return adapter.validate_python(value, strict=True)
    except ValidationError as e:
        raise InvalidInput(f"invalid {field}", problems_of(e, field)) from None


def path_name(request: web.Request, name: str, adapter: TypeAdapter[str]) -> str:
    """A path parameter, validated like the same name in a body."""
    return check_name(request.match_info[name], adapter, name)


def task_key(request: web.Request) -> tuple[QueueRef, str]:
    """The `{queue}/{id}` of a task route, in the caller's project."""
    return queue_ref(request), path_name(request, "id", IDENTIFIER)


def queue_ref(request: web.Request) -> QueueRef:
    """The `{queue}` of a route, in the caller's project."""
    return QueueRef(project_of(request), path_name(request, "queue", QUEUE_NAME))


def log_fields(request: web.Request) -> dict[str, str]:
    """The task, queue and worker a request names, for `extra=` on a log line about it (unvalidated, as sent;
    the JSON log format escapes whatever they hold). The recurring routes' {id} is a recurring task's."""
    info = {k: v[:WORKER_ID_MAX_LENGTH] for k, v in request.match_info.items()}  # bounded lines
    recurring = request.path.startswith("/recurring_tasques/")
    worker = request.headers.get(WORKER_ID_HEADER, "").strip()[:WORKER_ID_MAX_LENGTH]
    return about(
        task_id=None if recurring else info.get("id"),
        recurring_id=info.get("id") if recurring else None,
        queue=info.get("queue"),
        worker_id=worker or None,
    )


def worker_id(request: web.Request) -> str:
    value = request.headers.get(WORKER_ID_HEADER, "").strip()
    if not value:
        raise InvalidInput(
            f"the {WORKER_ID_HEADER} header is required",
            [FieldProblem(WORKER_ID_HEADER, "missing or empty header")],
        )
    # Stored in every claim and indexed as a keyword: bounded, printable.
    if len(value) > WORKER_ID_MAX_LENGTH or not value.isprintable():
        raise InvalidInput(
            f"the {WORKER_ID_HEADER} header is malformed",
            [FieldProblem(WORKER_ID_HEADER, f"must be 1 to {WORKER_ID_MAX_LENGTH} printable characters")],
        )
    return value


def check_worker_id(value: str, field: str) -> str:
    """A worker id as the header allows it: 1 to 256 printable characters, no surrounding blanks."""
    if not value or value != value.strip() or len(value) > WORKER_ID_MAX_LENGTH or not value.isprintable():
        raise InvalidInput(
            f"invalid {field}",
            [FieldProblem(field, f"must be 1 to {WORKER_ID_MAX_LENGTH} printable characters (a worker id)")],
        )
    return value


def worker_info(request: web.Request) -> tuple[str | None, str | None]:
    """The optional version and host headers of a worker call: printable, at most 200 characters."""
    out: list[str | None] = []
    for header in (WORKER_VERSION_HEADER, WORKER_HOST_HEADER):
        value = request.headers.get(header)
        if value is not None:
            value = value.strip()
            if len(value) > WORKER_INFO_MAX_LENGTH or not value.isprintable():
                raise InvalidInput(
                    f"the {header} header is malformed",
                    [FieldProblem(header, f"must be at most {WORKER_INFO_MAX_LENGTH} printable characters")],
                )
        out.append(value or None)
    return out[0], out[1]


def claim_id(request: web.Request) -> str | None:
    """The claim id header, or None when absent (Go clients send none: only the worker id is checked)."""
    value = request.headers.get(CLAIM_ID_HEADER)
    if value is None:
        return None
    if _CLAIM_ID.fullmatch(value) is None:
        raise InvalidInput(
            f"the {CLAIM_ID_HEADER} header is malformed",
            [
                FieldProblem(
                    CLAIM_ID_HEADER,
                    f"must be 1 to {CLAIM_ID_MAX_LENGTH} letters, digits or . _ ~ - (the claim's last_claimed.claim_id)",
                )
            ],
        )
    return value


# Every response hides stored secrets (inline TLS keys); stores serialize without this context.
_RESPONSE_CONTEXT = {REDACT_SECRETS: True}


def json_model(model: BaseModel, status: int = 200, *, exclude_none: bool = True) -> web.Response:
    """`exclude_none=False` for the newer bodies whose contract shows an absent value as null."""
    body = model.model_dump_json(exclude_none=exclude_none, context=_RESPONSE_CONTEXT)
    return web.Response(status=status, body=body, content_type="application/json")


def json_list(items: list[T], adapter: TypeAdapter[list[T]]) -> web.Response:
    body = adapter.dump_json(items, exclude_none=True, context=_RESPONSE_CONTEXT)
    return web.Response(body=body, content_type="application/json")

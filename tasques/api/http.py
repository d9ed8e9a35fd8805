"""Small request/response helpers shared by the route modules."""

from __future__ import annotations

import re
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, TypeAdapter

from tasques.domain.errors import FieldProblem, InvalidInput
from tasques.domain.http_target import REDACT_SECRETS

WORKER_ID_HEADER = "X-TASQUES-WORKER-ID"
# Optional on report/done/failed/unclaim: `last_claimed.claim_id` of the claim the caller holds.
CLAIM_ID_HEADER = "X-TASQUES-CLAIM-ID"
CLAIM_ID_MAX_LENGTH = 128
CLAIM_ID_PATTERN = rf"^[A-Za-z0-9._~-]{{1,{CLAIM_ID_MAX_LENGTH}}}$"
_CLAIM_ID = re.compile(CLAIM_ID_PATTERN)

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


async def read_body(request: web.Request, model: type[M], *, optional: bool = False) -> M:
    """Parse the JSON body into `model`; an absent body counts as `{}` where the body is optional."""
    raw = await request.read()
    if not raw.strip():
        if optional:
            return model.model_validate({})
        raise InvalidInput("a JSON body is required", [FieldProblem("body", "missing")])
    return model.model_validate_json(raw)


def worker_id(request: web.Request) -> str:
    value = request.headers.get(WORKER_ID_HEADER, "").strip()
    if not value:
        raise InvalidInput(
            f"the {WORKER_ID_HEADER} header is required",
            [FieldProblem(WORKER_ID_HEADER, "missing or empty header")],
        )
    return value


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


def json_model(model: BaseModel, status: int = 200) -> web.Response:
    body = model.model_dump_json(exclude_none=True, context=_RESPONSE_CONTEXT)
    return web.Response(status=status, body=body, content_type="application/json")


def json_list(items: list[T], adapter: TypeAdapter[list[T]]) -> web.Response:
    body = adapter.dump_json(items, exclude_none=True, context=_RESPONSE_CONTEXT)
    return web.Response(body=body, content_type="application/json")

"""Every error leaves the server as `{"message": ..., "details": [{"field": ..., "problem": ...}]}`.

Domain errors map to HTTP statuses here, and only here.
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import ValidationError

from tasques.api.access.ratelimit import retry_after_header
from tasques.api.http import JSON_CONTENT_TYPE, UnsupportedMediaType, log_fields
from tasques.api.schemas import ErrorBody, ErrorDetail
from tasques.domain.errors import (
    AlreadyExists,
    Forbidden,
    InvalidInput,
    NotClaimed,
    NotFound,
    NotOwnedByWorker,
    QuotaExceeded,
    RateLimited,
    StoreUnavailable,
    TasquesError,
    Unauthenticated,
    VersionConflict,
)

log = logging.getLogger(__name__)

# A store outage answers 503 with this Retry-After (seconds): soon, since the store deadline already paced it.
RETRY_AFTER_SECONDS = 1
_UNAVAILABLE_PREFIX = "store unavailable"

# Both schemes a client may answer a 401 with: Bearer (tokens, JWTs) and Basic (project + token, Go clients).
CHALLENGE = 'Bearer realm="tasques", Basic realm="tasques"'

STATUS_OF: dict[type[TasquesError], int] = {
    InvalidInput: 400,
    Unauthenticated: 401,
    Forbidden: 403,
    NotOwnedByWorker: 403,
    NotFound: 404,
    AlreadyExists: 409,
    NotClaimed: 409,
    VersionConflict: 409,
    QuotaExceeded: 429,
    RateLimited: 429,
    StoreUnavailable: 503,
}


def error_of(e: Exception) -> tuple[int, ErrorBody]:
    """The status and body an error answers with: for one item of a batch, as for a whole request."""
    if isinstance(e, InvalidInput):
        return 400, ErrorBody(
            message=str(e), details=[ErrorDetail(field=p.field, problem=p.problem) for p in e.problems]
        )
    if isinstance(e, StoreUnavailable):
        text = str(e) or "no answer"
        return 503, ErrorBody(
            message=text if text.startswith(_UNAVAILABLE_PREFIX) else f"{_UNAVAILABLE_PREFIX}: {text}"
        )
    if isinstance(e, TasquesError):
        return next((s for cls, s in STATUS_OF.items() if isinstance(e, cls)), 500), ErrorBody(message=str(e))
    log.error("unexpected error in a batch item", exc_info=e)
    return 500, ErrorBody(message="internal server error")


def error_response(status: int, message: str, details: list[ErrorDetail] | None = None) -> web.Response:
    body = ErrorBody(message=message, details=details or [])
    return web.Response(status=status, body=body.model_dump_json(), content_type="application/json")


def unavailable_response(e: StoreUnavailable) -> web.Response:
    """503 `{"message": "store unavailable: ..."}` with `Retry-After`: the store, not the request, failed."""
    _, body = error_of(e)
    resp = error_response(503, body.message)
    resp.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return resp


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except UnsupportedMediaType as e:
        return error_response(415, str(e), [ErrorDetail(field="Content-Type", problem=f"must be {JSON_CONTENT_TYPE}")])
    except ValidationError:
        # Request bodies are validated in read_body (a 400 there); this one is a model the server built itself.
        log.exception("server-side validation error on %s %s", request.method, request.path, extra=log_fields(request))
        return error_response(500, "internal server error")
    except StoreUnavailable as e:
        log.warning("%s %s: %s", request.method, request.path, e, extra=log_fields(request))
        return unavailable_response(e)
    except TasquesError as e:
        status, body = error_of(e)
        resp = error_response(status, body.message, body.details)
        if isinstance(e, Unauthenticated):
            resp.headers["WWW-Authenticate"] = CHALLENGE
        elif isinstance(e, RateLimited):
            resp.headers["Retry-After"] = retry_after_header(e.retry_after)
        return resp
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return error_response(e.status, e.reason)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path, extra=log_fields(request))
        return error_response(500, "internal server error")

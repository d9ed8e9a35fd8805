"""Optional HTTP basic auth, as in the original server. `/health` and `/ready` stay open for load balancers."""

from __future__ import annotations

import base64
import binascii
import hmac

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from tasques.api.errors import error_response
from tasques.config import BasicAuthUser

OPEN_PATHS = frozenset({"/health", "/ready"})


def basic_auth_middleware(users: list[BasicAuthUser]) -> Middleware:
    known = {u.name.encode(): u.password.encode() for u in users}

    def allowed(header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            name, _, password = base64.b64decode(encoded, validate=True).partition(b":")
        except (binascii.Error, ValueError):
            return False
        expected = known.get(name)
        # Compare even for unknown names so timing does not reveal which names exist.
        return hmac.compare_digest(password, expected or b"\0" * 32) and expected is not None

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in OPEN_PATHS or allowed(request.headers.get("Authorization", "")):
            return await handler(request)
        resp = error_response(401, "authentication required")
        resp.headers["WWW-Authenticate"] = 'Basic realm="tasques"'
        return resp

    return middleware

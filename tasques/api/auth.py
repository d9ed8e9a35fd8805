"""Optional HTTP basic auth, as in the original server. `/health` and `/ready` stay open for load balancers."""

from __future__ import annotations

import base64
import binascii
import hmac

from aiohttp import web

from tasques.api.access_control import ANONYMOUS, Authenticate, Principal
from tasques.config import BasicAuthUser
from tasques.domain.errors import Unauthenticated


def basic_users(users: list[BasicAuthUser]) -> Authenticate:
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

    async def authenticate(request: web.Request) -> Principal:
        if allowed(request.headers.get("Authorization", "")):
            return ANONYMOUS
        raise Unauthenticated("authentication required")

    return authenticate

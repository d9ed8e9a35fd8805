"""Who is calling, and what each route lets them do.

Every route declares the role it requires next to its definition (`@requires(Role.WORKER)`); the access
middleware (`tasques.api.app`) puts the caller's `Principal` on the request before any handler runs, and
refuses a route whose role the caller lacks. A route with no declared role is refused to everyone but
admins, so a route added without a declaration fails closed. `/health` and `/ready` are the only API routes
open to callers without credentials (`OPEN_PATHS`), and `/metrics` when configured so; the dashboard's static
files under `/ui` (`OPEN_PREFIX`) are open too, as they hold no data.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from tasques.domain.errors import Forbidden
from tasques.domain.limits import DEFAULT_PROJECT
from tasques.domain.project import Role, may

OPEN_PATHS = frozenset({"/health", "/ready"})
# The dashboard's static files (`routes_ui`): `/ui` and every path under `/ui/`, nothing else.
OPEN_PREFIX = "/ui"
H = TypeVar("H", bound=Callable[..., object])
_ROLES: dict[object, Role] = {}


Via = Literal["token", "jwt", "basic", "none"]


@dataclass(frozen=True)
class Principal:
    """The caller: the project its requests act in, its role, and how it proved it (for audit lines)."""

    project: str
    role: Role
    token_id: str | None = None  # the API token used, if one was
    via: Via = "none"
    actor: str = "anonymous"  # token:<id>, jwt:<sub>, basic:<user>, admin-token, anonymous


_PRINCIPAL = web.RequestKey("principal", Principal)

# With auth off every request acts as an admin of the default project, as the original server did.
ANONYMOUS = Principal(DEFAULT_PROJECT, Role.ADMIN)


def requires(role: Role) -> Callable[[H], H]:
    """Declare the role a route handler requires (stack it under the route decorator)."""

    def declare(handler: H) -> H:
        _ROLES[handler] = role
        return handler

    return declare


def required_role(handler: object) -> Role:
    """The role a handler declared; admin for one that declared none (fail closed)."""
    return _ROLES.get(handler, Role.ADMIN)


def declared(handler: object) -> bool:
    return handler in _ROLES


def set_principal(request: web.Request, principal: Principal) -> None:
    request[_PRINCIPAL] = principal


def principal(request: web.Request) -> Principal:
    """The caller. A request that reached a handler without one is a wiring bug: a 500, never an open door."""
    try:
        return request[_PRINCIPAL]
    except KeyError:
        raise RuntimeError("no principal on the request: the access middleware did not run") from None


def project_of(request: web.Request) -> str:
    return principal(request).project


# Who sent a request (raises Unauthenticated, Forbidden or RateLimited); see tasques.api.access.
Authenticate = Callable[[web.Request], Awaitable[Principal]]


async def anonymous(_: web.Request) -> Principal:
    """The caller when auth is off."""
    return ANONYMOUS


def _role_of(request: web.Request) -> Role | None:
    """The role the matched route requires; None where no route matched (the handler answers 404/405)."""
    info = request.match_info
    if info.http_exception is not None:
        return None
    if isinstance(info.route.resource, web.StaticResource):
        return Role.VIEWER  # the Swagger UI's assets
    return required_role(info.handler)


def access_middleware(authenticate: Authenticate, open_paths: frozenset[str]) -> Middleware:
    """Every request but `open_paths` names its caller; the route's declared role decides (403 otherwise)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path in open_paths or path == OPEN_PREFIX or path.startswith(OPEN_PREFIX + "/"):
            return await handler(request)
        caller = await authenticate(request)
        role = _role_of(request)
        if role is not None and not may(caller.role, role):
            raise Forbidden(f"the {caller.role} role may not call {request.method} {request.path}")
        set_principal(request, caller)
        return await handler(request)

    return middleware

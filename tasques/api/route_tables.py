"""Every route table the app serves, and the role each route declared (listed in the OpenAPI document)."""

from __future__ import annotations

import re

from aiohttp import web

from tasques.api import (
    routes_batches,
    routes_meta,
    routes_overview,
    routes_projects,
    routes_queues,
    routes_recurring,
    routes_tasks,
    routes_ui,
    routes_workers,
)
from tasques.api.access_control import declared, required_role
from tasques.domain.project import Role

ROUTE_TABLES: tuple[web.RouteTableDef, ...] = (
    routes_meta.routes,
    routes_tasks.routes,
    routes_recurring.routes,
    routes_queues.routes,
    routes_projects.routes,
    routes_workers.routes,
    routes_batches.routes,
    routes_overview.routes,
    routes_ui.routes,
)


# `{name:regex}` in a route's path, written `{name}` in the table as in the router's canonical paths.
_VARIABLE_REGEX = re.compile(r"\{(\w+):[^}]*\}")


def route_roles() -> dict[tuple[str, str], Role]:
    """(method, path) -> the role its handler declared, for every route of every table and `/metrics`.
    A route that declared none is missing here (the access middleware treats it as admin-only)."""
    roles = {("get", "/metrics"): required_role(routes_meta.metrics)}
    for table in ROUTE_TABLES:
        for route in table:
            if isinstance(route, web.RouteDef) and declared(route.handler):
                roles[(route.method.lower(), _VARIABLE_REGEX.sub(r"{\1}", route.path))] = required_role(route.handler)
    return roles

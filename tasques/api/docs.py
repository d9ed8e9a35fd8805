"""Serves the OpenAPI document and Swagger UI, whose assets come from the installed swagger-ui-bundle."""

from __future__ import annotations

import asyncio
import functools
import json
from pathlib import Path

import swagger_ui_bundle
from aiohttp import web

from tasques.api.access_control import requires
from tasques.api.openapi import build_document, render_yaml
from tasques.domain.project import Role

_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Tasques API</title>
  <link rel="stylesheet" href="/swagger/static/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/swagger/static/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true});
  </script>
</body>
</html>
"""


@functools.cache
def _documents() -> tuple[bytes, bytes]:
    """The OpenAPI document as JSON and YAML: the same for every app of a process, built on first request (its
    YAML rendering takes a few hundred ms, which every app paid at its build before); `_warm` builds them."""
    document = build_document()
    return json.dumps(document).encode(), render_yaml(document).encode()


async def _warm(_: web.Application) -> None:
    # Off the event loop: the first app of a process builds the documents in a thread before it serves.
    await asyncio.get_running_loop().run_in_executor(None, _documents)


def add_doc_routes(app: web.Application) -> None:
    app.on_startup.append(_warm)

    @requires(Role.VIEWER)
    async def openapi_json(_: web.Request) -> web.Response:
        return web.Response(body=_documents()[0], content_type="application/json")

    @requires(Role.VIEWER)
    async def openapi_yaml(_: web.Request) -> web.Response:
        return web.Response(body=_documents()[1], content_type="application/yaml")

    @requires(Role.VIEWER)
    async def swagger(_: web.Request) -> web.Response:
        return web.Response(text=_PAGE, content_type="text/html")

    app.router.add_get("/openapi.json", openapi_json)
    app.router.add_get("/openapi.yaml", openapi_yaml)
    app.router.add_get("/swagger", swagger)
    app.router.add_static("/swagger/static", Path(swagger_ui_bundle.swagger_ui_path))

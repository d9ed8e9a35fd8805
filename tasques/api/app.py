"""aiohttp application factory."""

from __future__ import annotations

from aiohttp import web

from tasques.config import Config

CONFIG_KEY = web.AppKey("config", Config)


async def health(request: web.Request) -> web.Response:
    config = request.app[CONFIG_KEY]
    return web.json_response({"status": "ok", "store": config.store.kind})


def build_app(config: Config) -> web.Application:
    app = web.Application()
    app[CONFIG_KEY] = config
    app.router.add_get("/health", health)
    return app

"""`/ui`: the web dashboard's static files from the package (`tasques/ui/static/`), open without credentials.

They hold no data (every API call the page makes carries the user's token), so the access middleware lets
exactly `/ui` and `/ui/...` through (`access_control.OPEN_PREFIX`). A name is served only when it resolves to a
regular file inside the static directory: no `..`, no absolute or hidden segments, no symlink out.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from tasques.api.access_control import requires
from tasques.domain.errors import NotFound
from tasques.domain.project import Role

STATIC_DIR = Path(__file__).resolve().parent.parent / "ui" / "static"
INDEX = "index.html"
UI_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    # Revalidated on every load (ETag/Last-Modified), so an upgraded server's page is never stale.
    "Cache-Control": "no-cache",
}

routes = web.RouteTableDef()


def asset_path(name: str, root: Path = STATIC_DIR) -> Path | None:
    """The file `name` (a `/`-separated relative path) names inside `root`, or None."""
    parts = name.split("/")
    if any(not p or p.startswith(".") or "\\" in p or "\x00" in p for p in parts):
        return None  # empty, `.`, `..` and hidden segments; backslashes (Windows separators)
    base = root.resolve()
    try:
        path = base.joinpath(*parts).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    return path if path.is_relative_to(base) and path.is_file() else None


@routes.get("/ui")
@requires(Role.VIEWER)
async def ui_index(_: web.Request) -> web.StreamResponse:
    return _serve(INDEX)


@routes.get("/ui/")
@requires(Role.VIEWER)
async def ui_root(_: web.Request) -> web.StreamResponse:
    return _serve(INDEX)


@routes.get("/ui/{path:.+}")
@requires(Role.VIEWER)
async def ui_asset(request: web.Request) -> web.StreamResponse:
    return _serve(request.match_info["path"])


def _serve(name: str) -> web.StreamResponse:
    path = asset_path(name)
    if path is None:
        raise NotFound(f"no dashboard asset {name[:200]!r}")
    return web.FileResponse(path, headers=UI_HEADERS)

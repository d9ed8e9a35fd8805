"""The OpenAPI document, Swagger UI, and that the document matches the routes the app really serves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from tests.api.conftest import Client

REPO = Path(__file__).resolve().parents[2]
# Pages, not API operations: the docs themselves and the dashboard's static files.
DOC_PATHS = frozenset({"/openapi.json", "/openapi.yaml", "/swagger", "/ui", "/ui/", "/ui/{path}"})
METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options", "trace"})


async def _fetch(client: Client, path: str) -> tuple[str, bytes]:
    async with client.get(path) as resp:
        assert resp.status == 200, f"GET {path}: {resp.status}"
        return resp.content_type, await resp.read()


async def _document(client: Client) -> dict[str, Any]:
    content_type, raw = await _fetch(client, "/openapi.json")
    assert content_type == "application/json"
    doc = json.loads(raw)
    assert isinstance(doc, dict)
    return doc


async def test_openapi_json(client: Client) -> None:
    doc = await _document(client)
    assert doc["openapi"].startswith("3.")
    assert doc["info"]["title"]
    assert doc["paths"]
    assert "ErrorBody" in doc["components"]["schemas"]


async def test_openapi_yaml_is_the_same_document(client: Client) -> None:
    content_type, raw = await _fetch(client, "/openapi.yaml")
    assert content_type in {"application/yaml", "application/x-yaml", "text/yaml"}
    assert yaml.safe_load(raw) == await _document(client)


async def test_every_ref_resolves(client: Client) -> None:
    doc = await _document(client)
    schemas = doc["components"]["schemas"]
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref":
                    refs.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(doc)
    assert refs
    for ref in refs:
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.removeprefix("#/components/schemas/") in schemas, ref


async def test_swagger_ui_and_its_assets(client: Client) -> None:
    content_type, page = await _fetch(client, "/swagger")
    assert content_type == "text/html"
    html = page.decode()
    assert "/swagger/static/swagger-ui-bundle.js" in html
    assert "/openapi.json" in html
    for asset in ("/swagger/static/swagger-ui-bundle.js", "/swagger/static/swagger-ui.css"):
        assert asset in html
        _, body = await _fetch(client, asset)
        assert len(body) > 1000, asset


def _served_operations(app: web.Application) -> set[tuple[str, str]]:
    served: set[tuple[str, str]] = set()
    for route in app.router.routes():
        resource = route.resource
        if resource is None or isinstance(resource, web.StaticResource) or route.method == "HEAD":
            continue
        path = resource.canonical
        if path in DOC_PATHS:
            continue
        served.add((route.method.lower(), path))
    return served


async def test_openapi_paths_match_the_routes(client: Client) -> None:
    doc = await _document(client)
    documented = {(method, path) for path, ops in doc["paths"].items() for method in ops if method in METHODS}
    served = _served_operations(client.app)
    assert ("post", "/tasques") in served
    assert ("get", "/tasques/{queue}/{id}") in served
    assert served - documented == set(), "routes missing from the OpenAPI document"
    assert documented - served == set(), "documented operations the app does not serve"


async def test_every_documented_path_answers_something_other_than_404_or_405(client: Client) -> None:
    doc = await _document(client)
    for path, ops in doc["paths"].items():
        concrete = (
            path.replace("{queue}", "q").replace("{id}", "t").replace("{project}", "p").replace("{token_id}", "x")
        )
        for method in ops:
            async with client.request(method.upper(), concrete, json={}) as resp:
                if resp.status in (404, 405):
                    # A 404 is fine only when it is the record that is missing, not the route.
                    body = await resp.json()
                    assert resp.status == 404, f"{method} {path}: {resp.status}"
                    assert body["message"] != "Not Found", f"{method} {path}: no such route"


async def test_committed_openapi_yaml_matches_the_served_document(client: Client) -> None:
    committed = REPO / "openapi.yaml"
    assert committed.exists(), "openapi.yaml is missing: run `make openapi` (.venv/bin/tasques openapi > openapi.yaml)"
    _, served = await _fetch(client, "/openapi.yaml")
    assert committed.read_text() == served.decode(), "openapi.yaml is stale: run `make openapi`"

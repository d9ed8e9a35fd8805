"""The import rules of ARCHITECTURE.md, enforced: `api -> service -> domain`, `service -> store.base <- store.*`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "tasques"

# Layer -> module prefixes it must never import.
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "domain": (
        "tasques.api",
        "tasques.service",
        "tasques.store",
        "tasques.leader",
        "tasques.server",
        "tasques.config",
        "aiohttp",
        "elasticsearch",
        "sqlite3",
        "asyncio",
    ),
    "service": ("tasques.api", "tasques.store.sqlite", "tasques.store.elasticsearch", "tasques.server", "aiohttp"),
    "store": ("tasques.api", "tasques.service", "tasques.leader", "tasques.server"),
    "leader": ("tasques.api", "tasques.store.sqlite", "tasques.store.elasticsearch", "tasques.server"),
    "dispatch": ("tasques.api", "tasques.store.sqlite", "tasques.store.elasticsearch", "tasques.server"),
    "observe": (
        "tasques.api",
        "tasques.store.sqlite",
        "tasques.store.elasticsearch",
        "tasques.server",
        "tasques.leader",
    ),
    "api": ("tasques.store.sqlite", "tasques.store.elasticsearch", "tasques.leader", "tasques.server"),
    # Talks to Kibana over HTTP; knows nothing of the server it describes.
    "kibana": (
        "tasques.api",
        "tasques.service",
        "tasques.store",
        "tasques.leader",
        "tasques.server",
        "tasques.dispatch",
        "elasticsearch",
    ),
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_only_what_it_may(layer: str) -> None:
    files = sorted((PACKAGE / layer).rglob("*.py"))
    assert files, f"no modules in tasques/{layer}"
    breaches = [
        f"{path.relative_to(PACKAGE.parent)} imports {name}"
        for path in files
        for name in sorted(_imports(path))
        if name.startswith(FORBIDDEN[layer]) and not (layer == "store" and name.startswith("tasques.store"))
    ]
    assert not breaches, "\n".join(breaches)


def test_the_store_backends_do_not_import_each_other() -> None:
    for backend, other in (("sqlite", "elasticsearch"), ("elasticsearch", "sqlite")):
        for path in (PACKAGE / "store" / backend).rglob("*.py"):
            assert not any(n.startswith(f"tasques.store.{other}") for n in _imports(path)), path

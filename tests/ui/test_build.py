"""The dashboard's committed JS is exactly what its TypeScript sources compile to, and its page loads only local
assets that exist (no CDN: it must work offline, and the CSP `default-src 'self'` would block the rest)."""

from __future__ import annotations

import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UI = REPO / "ui"
STATIC = REPO / "tasques" / "ui" / "static"
COMPILED = STATIC / "js"
TSC = UI / "node_modules" / ".bin" / "tsc"


def files_under(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_committed_js_is_what_the_sources_compile_to(tmp_path: Path) -> None:
    assert TSC.exists(), f"{TSC} is missing: run `make ui` (npm ci) first"
    out = tmp_path / "js"
    run = subprocess.run(
        [str(TSC), "-p", str(UI / "tsconfig.json"), "--outDir", str(out)],
        cwd=UI,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, f"tsc failed:\n{run.stdout}{run.stderr}"
    fresh, committed = files_under(out), files_under(COMPILED)
    assert sorted(fresh) == sorted(committed), "run `make ui` and commit tasques/ui/static/js"
    drifted = [name for name in fresh if fresh[name] != committed[name]]
    assert drifted == [], f"{drifted} differ from what ui/src compiles to: run `make ui` and commit the result"


class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if "style" in a or tag == "style":
            self.inline.append(f"<{tag}> style")
        if any(name.startswith("on") for name in a):
            self.inline.append(f"<{tag}> event handler")
        if tag == "script":
            if a.get("src") is None:
                self.inline.append("<script> without src")
            else:
                self.urls.append(a["src"] or "")
        elif tag in ("link", "img", "source", "iframe") and (a.get("href") or a.get("src")):
            self.urls.append(a.get("href") or a.get("src") or "")


def test_index_loads_only_local_assets_that_exist() -> None:
    page = _Assets()
    page.feed((STATIC / "index.html").read_text(encoding="utf-8"))
    assert page.inline == [], "inline scripts, styles and handlers are blocked by the CSP"
    assert page.urls, "index.html loads no assets"
    for url in page.urls:
        # Absolute /ui/ paths: the page is served at both /ui and /ui/, where relative ones resolve differently.
        assert url.startswith("/ui/"), f"{url}: not a local /ui/ asset"
        assert (STATIC / url.removeprefix("/ui/")).is_file(), f"{url}: no such file under {STATIC}"


@pytest.mark.parametrize("module", sorted(p.relative_to(COMPILED).as_posix() for p in COMPILED.rglob("*.js")))
def test_every_module_import_resolves(module: str) -> None:
    """The browser loads the modules as they are, with no bundler: each import must name a file that exists."""
    path = COMPILED / module
    for target in re.findall(r"""^\s*(?:import|export)\b[^;]*?\bfrom\s+["']([^"']+)["']""", path.read_text(), re.M):
        assert target.startswith("."), f"{module}: bare import {target!r} (nothing resolves it in the browser)"
        assert (path.parent / target).resolve().is_file(), f"{module}: {target} does not exist"

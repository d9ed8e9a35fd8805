"""The build context: every COPY finds its sources past .dockerignore, and the build stage's files build the
wheel that the image installs, with the Kibana objects that tasques/kibana/tasques.ndjson links to and the
dashboard's static files."""

from __future__ import annotations

import email
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.deploy.context import BuildContext, DockerIgnore
from tests.deploy.dockerfile import Dockerfile

REPO = Path(__file__).resolve().parents[2]
IMAGE = Dockerfile(REPO / "Dockerfile")
CONTEXT = BuildContext(REPO)


def test_dockerignore_matching_follows_docker() -> None:
    ignore = DockerIgnore("*\n!keep\n!a/b.txt\n**/__pycache__\n**/*.py[co]\n# c\n/abs\n")
    assert ignore.excluded("README.md")
    assert ignore.excluded("a/c.txt")  # its parent `a` matches `*`
    assert not ignore.excluded("a/b.txt")
    assert not ignore.excluded("keep/x/y.py")  # a re-included directory brings its contents
    assert ignore.excluded("keep/x/__pycache__/y.cpython-311.pyc")
    assert ignore.excluded("keep/z.pyo")
    assert not ignore.excluded("keep/z.pyx")
    assert DockerIgnore("/abs\n").excluded("abs/x")
    assert not DockerIgnore("a?c\n").excluded("a/c")  # `?` stays within a segment
    assert DockerIgnore("**/x\n").excluded("x")  # `**/` matches no directory too


def test_the_context_holds_only_what_the_build_needs() -> None:
    for unwanted in (".git/HEAD", ".venv", "tests/conftest.py", "bench/results", "docs", "tasques.db"):
        assert CONTEXT.ignore.excluded(unwanted), unwanted
    assert CONTEXT.files("tasques"), "the package is sent"
    assert not [f for f in CONTEXT.files("tasques") if "__pycache__" in f or f.endswith(".pyc")]


@pytest.mark.parametrize("stage", [s.name for s in IMAGE.stages if s.name])
def test_every_copy_source_is_in_the_context_and_every_link_lands(stage: str, tmp_path: Path) -> None:
    copies = IMAGE.copies(IMAGE.stage(stage))
    CONTEXT.lay_out(copies, tmp_path)  # raises for a source that is missing or ignored
    for path in tmp_path.rglob("*"):
        if path.is_symlink():
            assert path.resolve().is_file(), f"{path.relative_to(tmp_path)} links to nothing in the image"
            assert path.resolve().is_relative_to(tmp_path)


def test_the_build_stage_files_build_the_wheel(tmp_path: Path) -> None:
    build = IMAGE.stage("build")
    CONTEXT.lay_out(IMAGE.copies(build), tmp_path / "root")
    src = tmp_path / "root" / IMAGE.workdir(build).lstrip("/")
    out = tmp_path / "wheels"
    # As the build stage runs it, but for Tasques alone: its dependencies' wheels are fetched, not built.
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--disable-pip-version-check", "-w", str(out), "."],
        cwd=src,
        capture_output=True,
        text=True,
        check=False,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (wheel,) = out.glob("tasques-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        assert {"tasques/cli.py", "tasques/api/app.py"} <= names
        # The dashboard's static files are package data, served from the installed package.
        assert "tasques/ui/static/index.html" in names
        assert zf.read("tasques/kibana/tasques.ndjson") == (REPO / "kibana" / "tasques.ndjson").read_bytes()
        info = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        assert "tasques = tasques.cli:main" in zf.read(info).decode()
        metadata = email.message_from_bytes(zf.read(info.replace("entry_points.txt", "METADATA")))
        assert metadata["Version"] == IMAGE.labels(IMAGE.final)["org.opencontainers.image.version"]

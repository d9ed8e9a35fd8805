"""The image's contract by behaviour: the final stage's ENTRYPOINT + CMD run with exactly its ENV, on a
read-only root with /tmp and a volume writable (tests/deploy/readonly.py). It must serve /health and /ready,
write only into the volume, pass its own HEALTHCHECK, and drain on SIGTERM within shutdown_grace.

Stand-ins, and why: the repo's Python environment for the image's (the code under test is this tree's, by
PYTHONPATH); a temp dir for the volume (env values under it are moved there); 127.0.0.1 and a free port for
0.0.0.0:8080; the config file the Dockerfile COPYs to the --config path for that path; root (or a user
namespace's root) for uid 10001, since the interpreter may live where 10001 cannot read (the read-only root
is the stronger check: it stops root too).
"""

from __future__ import annotations

import json
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tasques.config import load_config
from tests.conftest import IN_CI
from tests.deploy.dockerfile import Dockerfile, exec_form, healthcheck_command
from tests.deploy.readonly import read_only, unavailable
from tests.process import ServerProcess

REPO = Path(__file__).resolve().parents[2]
IMAGE = Dockerfile(REPO / "Dockerfile")
VOLUME = exec_form(IMAGE.final.last("VOLUME"))[0]


@pytest.fixture(scope="module")
def sandbox() -> None:
    reason = unavailable()
    if reason is not None:
        if IN_CI:
            pytest.fail(f"the read-only sandbox is required in CI: {reason}", pytrace=False)
        pytest.skip(f"no read-only sandbox here (needs root or user namespaces): {reason}")


def image_home() -> str:
    """HOME as Docker sets it for the image's USER: the home of the user the Dockerfile adds."""
    runs = " ".join(ins.args for ins in IMAGE.final.all("RUN"))
    words = shlex.split(runs)
    return words[words.index("--home-dir") + 1]


def image_config_file() -> Path:
    """The repo file the final stage COPYs to the CMD's --config path."""
    cmd = exec_form(IMAGE.final.last("CMD"))
    path = cmd[cmd.index("--config") + 1]
    (source,) = [c.sources[0] for c in IMAGE.copies(IMAGE.final) if c.dest == path and "from" not in c.flags]
    return REPO / source


def image_environment(volume: Path) -> dict[str, str]:
    env = {
        # what the base image provides: Python on PATH, a UTF-8 locale; HOME from the user
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": image_home(),
        "PYTHONPATH": str(REPO),
    }
    for key, value in IMAGE.env(IMAGE.final).items():
        under_volume = value == VOLUME or value.startswith(VOLUME + "/")
        env[key] = str(volume) + value[len(VOLUME) :] if under_volume else value
    return env


class ImageServer(ServerProcess):
    """The image's command on a read-only root, in the image's WORKDIR (moved like the volume)."""

    def __init__(self, volume: Path, log_path: Path) -> None:
        super().__init__(image_environment(volume), log_path)
        workdir = IMAGE.workdir(IMAGE.final)
        assert workdir == VOLUME or workdir.startswith(VOLUME + "/"), "a WORKDIR outside the volume has no stand-in"
        self.workdir = volume / Path(workdir).relative_to(VOLUME)
        self.env = self.environment()

    def command(self) -> list[str]:
        argv = exec_form(IMAGE.final.last("ENTRYPOINT")) + exec_form(IMAGE.final.last("CMD"))
        config = argv.index("--config") + 1
        argv[config] = str(image_config_file())
        return read_only(argv, self.workdir)

    def environment(self) -> dict[str, str]:
        return dict(self._settings)  # exactly the image's, nothing inherited

    def healthcheck(self) -> int:
        """The exit code of the image's HEALTHCHECK command, run in a sandbox with the server's environment."""
        ins = IMAGE.final.last("HEALTHCHECK")
        assert ins is not None
        env = {**self.env, "TASQUES_SERVER_BIND_ADDRESS": f"127.0.0.1:{self.port}"}
        argv = read_only(healthcheck_command(ins), self.workdir)
        return subprocess.run(argv, env=env, capture_output=True, timeout=30, check=False).returncode


def status(url: str, body: dict[str, object] | None = None) -> int:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            code: int = resp.status
            return code
    except urllib.error.HTTPError as e:
        return e.code


@pytest.mark.slow
@pytest.mark.usefixtures("sandbox")
def test_the_image_command_serves_on_a_read_only_root_and_drains_on_sigterm(tmp_path: Path) -> None:
    volume = tmp_path / "volume"
    volume.mkdir()
    server = ImageServer(volume, tmp_path / "server.log")
    grace = load_config(image_config_file(), environ=server.env).server.shutdown_grace.total_seconds()
    server.start(timeout=30)
    try:
        assert status(f"{server.url}/health") == 200
        assert status(f"{server.url}/ready") == 200
        assert status(f"{server.url}/tasques", {"queue": "image", "kind": "k"}) == 201  # a write, in the volume
        assert server.healthcheck() == 0
        server.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        code = server.wait_exit(grace)
        took = time.monotonic() - sent
    finally:
        server.kill()
    log = server.log_tail(20_000)
    assert code == 0, f"exit {code} after {took:.1f}s:\n{log}"
    assert took <= grace
    assert "with the sqlite store" in log  # the image's config and env were the ones read
    for trouble in ("Traceback", "Read-only file system", "Permission denied"):
        assert trouble not in log, log
    assert server.healthcheck() != 0  # and it notices a stopped server
    written = sorted(p.name for p in volume.iterdir())
    assert "tasques.db" in written
    assert all(name.startswith("tasques.db") for name in written), written  # the database, its -wal/-shm
    assert not Path(image_home()).exists()


@pytest.mark.usefixtures("sandbox")
def test_the_sandbox_root_is_read_only_and_the_volume_writable(tmp_path: Path) -> None:
    # The control for the test above: a write outside /tmp fails in the sandbox, one into the volume works.
    # Not in the repo: a checkout under /tmp (CI may clone there) is writable in the sandbox, as /tmp is.
    outside_dir = Path(tempfile.mkdtemp(prefix="tasques-read-only-probe-", dir="/var/tmp"))
    probe = outside_dir / "probe"
    write = "import sys; open(sys.argv[1], 'w').write('x')"
    try:
        outside = subprocess.run(
            read_only([sys.executable, "-c", write, str(probe)], tmp_path), capture_output=True, text=True, check=False
        )
        wrote = probe.exists()
    finally:
        shutil.rmtree(outside_dir, ignore_errors=True)
    assert not wrote
    assert "Read-only file system" in outside.stderr
    inside = subprocess.run(read_only([sys.executable, "-c", write, "v"], tmp_path), capture_output=True, check=False)
    assert inside.returncode == 0
    assert (tmp_path / "v").read_text() == "x"

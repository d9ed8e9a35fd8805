"""Fault fixtures: a dedicated Elasticsearch node that tests may stop (SIGSTOP) and continue, and a stalling
TCP proxy in front of the shared node.

The dedicated node is started by `scripts/elasticsearch` itself with its own run directory (data, logs, pid
and port of its own), from the same cached distribution as the shared node, and stopped afterwards. The
shared node at `TASQUES_TEST_ES_URL` is never paused. A node that cannot start skips locally and fails in CI.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import IN_CI, REPO
from tests.faults.proxy import StallingProxy
from tests.process import cache_root


@dataclass
class DedicatedNode:
    url: str
    pid: int

    def pause(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)


def _run_dir() -> Path:
    return cache_root() / f"es-run-faults-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def dedicated_es() -> Iterator[DedicatedNode]:
    run_dir = _run_dir()
    env = {**os.environ, "TASQUES_ES_RUN_DIR": str(run_dir), "TASQUES_ES_START_TIMEOUT": "90"}
    script = str(REPO / "scripts" / "elasticsearch")
    proc = subprocess.run([script, "start"], capture_output=True, text=True, env=env, check=False)
    try:
        if proc.returncode != 0:
            reason = f"dedicated Elasticsearch did not start ({proc.returncode}):\n{proc.stderr[-4000:]}"
            if IN_CI:
                pytest.fail(reason, pytrace=False)
            pytest.skip(reason)
        url = proc.stdout.strip().splitlines()[-1]
        pid = int((run_dir / "es.pid").read_text().strip())
        node = DedicatedNode(url, pid)
        yield node
    finally:
        # Never leave it stopped: a stopped process ignores SIGTERM until continued.
        pid_file = run_dir / "es.pid"
        if pid_file.exists():
            with contextlib.suppress(OSError, ValueError):
                os.kill(int(pid_file.read_text().strip()), signal.SIGCONT)
        subprocess.run([script, "stop"], capture_output=True, env=env, check=False)
        shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture
async def stalling_proxy(elasticsearch_url: str) -> AsyncIterator[StallingProxy]:
    """A proxy in front of the shared node; pausing it stalls only this test's traffic."""
    parts = urlsplit(elasticsearch_url)
    proxy = await StallingProxy(parts.hostname or "127.0.0.1", parts.port or 9200).start()
    try:
        yield proxy
    finally:
        await proxy.close()

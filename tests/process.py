"""Real `tasques serve` processes and their stores, for the tests that need them and for the benchmarks."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from elasticsearch import AsyncElasticsearch

from tasques.store.elasticsearch.cluster import has_ilm


def es_server_settings(url: str, index_prefix: str) -> dict[str, str]:
    """`TASQUES_*` settings for a server on the test Elasticsearch, isolated by index prefix."""
    return {
        "TASQUES_STORE_KIND": "elasticsearch",
        "TASQUES_STORE_ELASTICSEARCH_ADDRESSES": f"[{url}]",
        "TASQUES_STORE_ELASTICSEARCH_INDEX_PREFIX": index_prefix,
        "TASQUES_STORE_ELASTICSEARCH_REPLICAS": "0",
    }


async def delete_es_prefix(url: str, prefix: str) -> None:
    """Remove every index, template and ILM policy a store created under `prefix`. Indices are deleted by
    name, since a cluster may refuse wildcard deletes."""
    async with AsyncElasticsearch(url, request_timeout=30) as client:
        rows = await client.cat.indices(index=f"{prefix}-*", h="index", format="json", expand_wildcards="all")
        listed: list[dict[str, str]] = rows.body  # type: ignore[assignment]  # format=json gives rows, not text
        indices = [row["index"] for row in listed]
        if indices:
            await client.indices.delete(index=",".join(indices), ignore_unavailable=True)
        templates = await client.options(ignore_status=404).indices.get_index_template(name=f"{prefix}-*")
        names = [template["name"] for template in templates.body.get("index_templates", [])]
        if names:  # one cluster-state update for all of them, not one per template: the node is shared
            await client.indices.delete_index_template(name=",".join(names))
        if await has_ilm(client):
            await client.options(ignore_status=404).ilm.delete_lifecycle(name=f"{prefix}-archive-policy")


def cache_root() -> Path:
    """Where the harness keeps what outlives a test run, as scripts/elasticsearch does: /var/cache/tasques as root
    (the Elasticsearch user must reach it, and /root is mode 700), else the user's cache dir."""
    if os.geteuid() == 0:
        return Path("/var/cache/tasques")
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tasques"


PORTS_FROM = 10_000


def _port_block() -> range:
    """This test process's own ports: below the kernel's ephemeral range, one block per xdist worker."""
    try:
        ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_low = 32_768
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    size = (ephemeral_low - PORTS_FROM) // max(workers, 1)
    return range(PORTS_FROM + worker * size, PORTS_FROM + (worker + 1) * size)


_BLOCK = _port_block()
# From an offset of this process's own, so two suites (or `make screenshots` beside `make test`) start apart.
_first = _BLOCK.start + os.getpid() * 7919 % len(_BLOCK)
_next = itertools.chain(range(_first, _BLOCK.stop), range(_BLOCK.start, _first))


def free_port() -> int:
    """A loopback port that no one else will take before our server binds it.

    A port the kernel picked (bind to 0) is free only until the socket closes: a server process that binds it
    seconds later, on a loaded machine, may find another test's server there, and then another server answers its
    /health. So ports come from outside the ephemeral range (no bind to 0 or outgoing connection gets them), from a
    block of this worker's own, each handed out once per process."""
    for port in _next:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue  # taken by something outside the suite
            return port
    raise RuntimeError(f"no free port left in {_BLOCK}")


class ServerProcess:
    """Starts `python -m tasques.cli serve` with `TASQUES_*` settings, and waits until `/health` answers."""

    def __init__(
        self, settings: dict[str, str], log_path: Path, port: int | None = None, cli_args: Sequence[str] = ()
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._settings = settings
        self._log_path = log_path
        self._cli_args = list(cli_args)  # before `serve`, e.g. ["--log-level", "WARNING"]
        self._proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        """The command line; a subclass may run the server otherwise (tests/deploy/ runs the image's)."""
        return [sys.executable, "-m", "tasques.cli", *self._cli_args, "serve"]

    def environment(self) -> dict[str, str]:
        """The process environment, before the bind address is set to this object's port."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("TASQUES_") or k.startswith("TASQUES_TEST_")}
        env.update(self._settings)
        return env

    def start(self, timeout: float = 60.0) -> ServerProcess:
        # Generous: a store on a fresh Elasticsearch prefix creates its indices at start, which a node loaded by the
        # other test processes (the cluster tests' JVMs above all) has been seen to stretch past 20 s.
        env = self.environment()
        env["TASQUES_SERVER_BIND_ADDRESS"] = f"127.0.0.1:{self.port}"
        with self._log_path.open("ab") as log:
            self._proc = subprocess.Popen(self.command(), env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"server exited {self._proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"server did not answer /health within {timeout}s:\n{self.log_tail()}")

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def log_tail(self, chars: int = 4000) -> str:
        return self._log_path.read_text(errors="replace")[-chars:] if self._log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: the crash case, with no chance to clean up."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()

    def send_signal(self, sig: signal.Signals) -> None:
        if self._proc is not None:
            self._proc.send_signal(sig)

    def wait_exit(self, timeout: float) -> int | None:
        """The exit code, or None if the process still runs after `timeout` seconds."""
        if self._proc is None:
            return None
        try:
            return self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

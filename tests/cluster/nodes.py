"""A real multi-node Elasticsearch cluster on 127.0.0.1 that tests may break: kill -9, SIGSTOP/SIGCONT,
graceful restarts, each node on the same data dir and ports for its whole life.

Nodes run from the distribution `scripts/elasticsearch home` fetches (the one the shared node runs), each
with its own config copy, data, logs and tmp dirs under `base`, as the script's user when root. Every
method that waits polls the cluster over HTTP with the standard library, so it can run in a thread while
the test's event loop keeps working.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import REPO
from tests.process import free_port


@dataclass(frozen=True)
class Distribution:
    es_home: Path
    java_home: Path
    user: str  # run nodes as this user ("" unless we are root)

    @classmethod
    def fetch(cls) -> Distribution:
        """Fetch (once) and locate the distribution; raises RuntimeError with the script's output."""
        proc = subprocess.run(
            [str(REPO / "scripts" / "elasticsearch"), "home"], capture_output=True, text=True, check=False
        )
        lines = proc.stdout.split("\n")
        if proc.returncode != 0 or len(lines) < 3:
            raise RuntimeError(f"scripts/elasticsearch home failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
        return cls(Path(lines[0]), Path(lines[1]), lines[2])


@dataclass
class Node:
    name: str
    http_port: int
    transport_port: int
    dir: Path
    pid: int | None = None
    paused: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def alive(self) -> bool:
        if self.pid is None:
            return False
        try:
            # A daemonised node is not our child: it is reaped by init, so a zombie counts as gone.
            status = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return False
        return status.rsplit(")", 1)[1].split()[0] != "Z"


@dataclass
class Cluster:
    dist: Distribution
    base: Path
    size: int = 3
    heap: str = "320m"
    start_timeout: float = 120.0
    name: str = field(default_factory=lambda: f"tasques-cluster-{uuid.uuid4().hex[:8]}")
    nodes: list[Node] = field(init=False)

    def __post_init__(self) -> None:
        self.nodes = [Node(f"n{i}", free_port(), free_port(), self.base / f"n{i}") for i in range(self.size)]

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    # Lifecycle

    def start_all(self) -> None:
        """Start every node at once (they form the cluster together) and wait for green."""
        errors: list[BaseException] = []

        def start(node: Node) -> None:
            try:
                self.start(node, wait=False)
            except BaseException as e:  # re-raised below, from the caller's thread
                errors.append(e)

        threads = [threading.Thread(target=start, args=(n,)) for n in self.nodes]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        self.wait_green()

    def start(self, node: Node, *, wait: bool = True) -> None:
        """Start `node` on its data dir and ports; with `wait`, until it has joined and the cluster is green."""
        assert not node.alive, f"{node.name} is running"
        conf = node.dir / "config"
        for sub in ("data", "logs", "tmp"):
            (node.dir / sub).mkdir(parents=True, exist_ok=True)
        if not conf.exists():
            shutil.copytree(self.dist.es_home / "config", conf)
        if self.dist.user:
            subprocess.run(["chown", "-R", f"{self.dist.user}:", str(node.dir)], check=True)
        pid_file = node.dir / "es.pid"
        pid_file.unlink(missing_ok=True)
        seeds = ",".join(f"127.0.0.1:{n.transport_port}" for n in self.nodes)
        settings = {
            "cluster.name": self.name,
            "node.name": node.name,
            "network.host": "127.0.0.1",
            "http.port": node.http_port,
            "transport.port": node.transport_port,
            "discovery.seed_hosts": seeds,
            "cluster.initial_master_nodes": ",".join(n.name for n in self.nodes),
            "xpack.security.enabled": "false",
            "cluster.routing.allocation.disk.threshold_enabled": "false",
            "action.destructive_requires_name": "false",
            "path.data": node.dir / "data",
            "path.logs": node.dir / "logs",
        }
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(node.dir),
            "ES_PATH_CONF": str(conf),
            "ES_TMPDIR": str(node.dir / "tmp"),
            "ES_JAVA_HOME": str(self.dist.java_home),
            # Two processors each: three nodes share two cores with the rest of the suite.
            "ES_JAVA_OPTS": f"-Xms{self.heap} -Xmx{self.heap} -XX:ActiveProcessorCount=2 -XX:TieredStopAtLevel=1",
        }
        run_as = ["runuser", "-u", self.dist.user, "--"] if self.dist.user else []
        cmd = [*run_as, "env", *(f"{k}={v}" for k, v in env.items())]
        cmd += [str(self.dist.es_home / "bin" / "elasticsearch"), "-d", "-p", str(pid_file)]
        cmd += [f"-E{k}={v}" for k, v in settings.items()]
        with (node.dir / "startup.out").open("ab") as out:
            # -d returns once the node has started (or failed); -p records the server's own pid.
            proc = subprocess.run(
                cmd, cwd=node.dir, stdin=subprocess.DEVNULL, stdout=out, stderr=out, timeout=self.start_timeout
            )
        if proc.returncode != 0 or not pid_file.exists():
            raise RuntimeError(f"{node.name} did not start ({proc.returncode}):\n{self.log_tail(node)}")
        node.pid = int(pid_file.read_text().strip())
        node.paused = False
        if wait:
            self.wait_joined(node)
            self.wait_green()

    def kill(self, node: Node) -> None:
        """kill -9: the crash, no goodbye to the cluster."""
        assert node.pid is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(node.pid, signal.SIGKILL)
        self._wait_gone(node, 30)

    def stop(self, node: Node, grace: float = 30.0) -> None:
        """SIGTERM (a graceful shutdown: the node leaves the cluster), then SIGKILL after `grace`."""
        if node.pid is None:
            return
        self.resume(node)  # a stopped process ignores SIGTERM until continued
        with contextlib.suppress(ProcessLookupError):
            os.kill(node.pid, signal.SIGTERM)
        if not self._wait_gone(node, grace):
            self.kill(node)

    def pause(self, node: Node) -> None:
        assert node.pid is not None
        os.kill(node.pid, signal.SIGSTOP)
        node.paused = True

    def resume(self, node: Node) -> None:
        if node.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(node.pid, signal.SIGCONT)
        node.paused = False

    def close(self) -> None:
        """Stop every node (continued first) and remove their dirs."""
        for node in self.nodes:
            self.resume(node)
        threads = [threading.Thread(target=self.stop, args=(n,)) for n in self.nodes]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        shutil.rmtree(self.base, ignore_errors=True)

    def _wait_gone(self, node: Node, within: float) -> bool:
        deadline = time.monotonic() + within
        while node.alive:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        node.pid = None
        return True

    # Cluster facts (asked of any live, running node)

    def get(self, path: str, timeout: float = 5.0, body: Any = None) -> Any:
        """GET `path` as JSON from the first live node that answers; with `body`, POST it as JSON."""
        last: Exception | None = None
        data = None if body is None else json.dumps(body).encode()
        for node in self.nodes:
            if not node.alive or node.paused:
                continue
            request = urllib.request.Request(
                f"{node.url}{path}", data=data, headers={"Content-Type": "application/json"}
            )
            try:
                with urllib.request.urlopen(request, timeout=timeout) as resp:
                    return json.loads(resp.read())
            except urllib.error.HTTPError as e:
                e.close()  # the error is the response: its socket must be closed
                if e.code not in (408, 503):  # a health wait that timed out answers 408
                    raise
                last = e
            except OSError as e:
                last = e
        raise RuntimeError(f"no node answered {path}: {last}")

    def wait_green(self, within: float | None = None) -> None:
        deadline = time.monotonic() + (within or self.start_timeout)
        while True:
            try:
                health = self.get("/_cluster/health?wait_for_status=green&timeout=2s", timeout=5)
                if health["status"] == "green" and health["number_of_nodes"] == self.size:
                    return
            except RuntimeError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"cluster not green within {within or self.start_timeout}s: {self.describe()}")
            time.sleep(0.2)

    def wait_joined(self, node: Node, within: float | None = None) -> None:
        deadline = time.monotonic() + (within or self.start_timeout)
        while node.name not in self.node_names():
            if not node.alive:
                raise RuntimeError(f"{node.name} exited:\n{self.log_tail(node)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{node.name} did not join: {self.describe()}")
            time.sleep(0.2)

    def node_names(self) -> set[str]:
        try:
            return {row["name"] for row in self.get("/_cat/nodes?format=json&h=name")}
        except RuntimeError:
            return set()

    def master(self) -> Node:
        rows = self.get("/_cat/master?format=json")
        return self.node(rows[0]["node"])

    def primary_of(self, index: str, shard: int = 0) -> Node:
        """The node holding the started primary of `index`'s shard."""
        for row in self.get(f"/_cat/shards/{index}?format=json&h=shard,prirep,state,node"):
            if int(row["shard"]) == shard and row["prirep"] == "p" and row["state"] == "STARTED":
                return self.node(row["node"])
        raise RuntimeError(f"no started primary for {index}[{shard}]: {self.describe()}")

    def copies_of(self, index: str, shard: int = 0) -> set[str]:
        """Names of the nodes holding a started copy (primary or replica) of `index`'s shard."""
        rows = self.get(f"/_cat/shards/{index}?format=json&h=shard,state,node")
        return {row["node"] for row in rows if int(row["shard"]) == shard and row["state"] == "STARTED"}

    def place_copy_on(self, index: str, node: Node, shard: int = 0) -> None:
        """Make sure `node` holds a copy of `index`'s shard: move a replica there if it holds none, then wait."""
        copies = self.copies_of(index, shard)
        if node.name in copies:
            return
        source = next(name for name in sorted(copies) if self.primary_of(index, shard).name != name)
        move = {"index": index, "shard": shard, "from_node": source, "to_node": node.name}
        self.get("/_cluster/reroute", body={"commands": [{"move": move}]})
        deadline = time.monotonic() + self.start_timeout
        while node.name not in self.copies_of(index, shard) or len(self.copies_of(index, shard)) < 2:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{index}[{shard}] did not move to {node.name}: {self.describe()}")
            time.sleep(0.2)
        self.wait_green()

    def describe(self) -> str:
        try:
            health = self.get("/_cluster/health", timeout=2)
            return f"{health['status']}, {health['number_of_nodes']} nodes, {health['unassigned_shards']} unassigned"
        except RuntimeError as e:
            return str(e)

    def log_tail(self, node: Node, lines: int = 40) -> str:
        out = []
        for f in (node.dir / "startup.out", node.dir / "logs" / f"{self.name}.log"):
            if f.exists():
                out.append(f"===== {f} =====\n" + "\n".join(f.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(out)

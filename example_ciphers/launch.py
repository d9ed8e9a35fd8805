"""Run the whole ciphers example: a Tasques server on SQLite, the producer, a Python and a Go worker.

    example_ciphers/run [--server-port 8080] [--producer-port 8081] [--state-dir .tasques/example-ciphers]

(`make example` runs `example_ciphers/run`, which runs this with the project's venv.) It builds the Go worker
(`build_go.py`), starts each process in turn, waiting until it answers, prints the URLs, and keeps watching:
Ctrl-C (SIGINT), SIGTERM or SIGHUP stops the workers first, then the producer, then the server. If any of them
exits on its own, the tail of its log is printed and the rest are stopped. Each process logs to
`STATE_DIR/NAME.log`; the SQLite database is `STATE_DIR/tasques.db`, kept between runs.

The processes run in their own sessions, so a terminal's Ctrl-C reaches only this launcher, which stops them in
order; on Linux they also get SIGTERM should the launcher die without stopping them.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from example_ciphers import build_go

REPO = Path(__file__).resolve().parent.parent
STOP_TIMEOUT = 15.0
START_TIMEOUT = 30.0
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    name: str
    cmd: list[str]
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    terminated: bool = False

    def start(self) -> None:
        base = {k: v for k, v in os.environ.items() if not k.startswith("TASQUES_")}  # the server rejects unknown ones
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.cmd,
                cwd=REPO,
                env={**base, **self.env},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )

    def exited(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def terminate(self) -> None:
        """SIGTERM, once: a second one would cut a worker's graceful stop short."""
        if self.proc is not None and self.proc.poll() is None and not self.terminated:
            self.proc.send_signal(signal.SIGTERM)
            self.terminated = True

    def stop(self) -> None:
        """`terminate`, wait, and kill it if it takes too long."""
        self.terminate()
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            print(f"  {self.name} did not stop within {STOP_TIMEOUT:.0f}s: killing it", flush=True)
            self.proc.kill()
            self.proc.wait()

    def log_tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


class Stopped(Exception):
    """A signal asked the launcher to stop."""


class Failed(Exception):
    """Something could not be started, or exited on its own."""


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do: TIME_WAIT is no obstacle
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def _wait_until_ready(child: Child, url: str, stopping: Callable[[], bool]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if stopping():
            raise Stopped
        code = child.exited()
        if code is not None:
            raise Failed(f"{child.name} exited {code} while starting:\n{child.log_tail()}")
        if _answers(url):
            return
        time.sleep(0.1)
    raise Failed(f"{child.name} did not answer {url} within {START_TIMEOUT:.0f}s:\n{child.log_tail()}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="example_ciphers/run", description="Run the Tasques ciphers example.")
    parser.add_argument(
        "--server-port", type=int, default=8080, help="the Tasques server's port (default: %(default)s)"
    )
    parser.add_argument("--producer-port", type=int, default=8081, help="the web app's port (default: %(default)s)")
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=REPO / ".tasques" / "example-ciphers",
        help="the SQLite database and the logs (default: .tasques/example-ciphers)",
    )
    args = parser.parse_args(argv)

    signals: list[int] = []
    children: list[Child] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if signals:  # a second Ctrl-C: no more waiting
            for child in reversed(children):
                if child.proc is not None and child.proc.poll() is None:
                    child.proc.kill()
        signals.append(signum)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)

    for name, port in (("--server-port", args.server_port), ("--producer-port", args.producer_port)):
        if not _port_free(port):
            print(f"example_ciphers: port {port} is taken; pick another with {name}", file=sys.stderr)
            return 2
    print("example_ciphers: building the Go worker (the first time installs oapi-codegen)...", flush=True)
    try:
        go_worker = build_go.build()
    except build_go.GoMissing as e:
        print(f"example_ciphers: {e}", file=sys.stderr)
        return 3
    except build_go.BuildError as e:
        print(f"example_ciphers: {e}", file=sys.stderr)
        return 1

    state: Path = args.state_dir.resolve()
    state.mkdir(parents=True, exist_ok=True)
    server_url = f"http://127.0.0.1:{args.server_port}"
    producer_url = f"http://127.0.0.1:{args.producer_port}"
    py = sys.executable
    server = Child(
        "server",
        [py, "-m", "tasques.cli", "serve"],
        state / "server.log",
        {
            "TASQUES_STORE_KIND": "sqlite",
            "TASQUES_STORE_SQLITE_PATH": str(state / "tasques.db"),
            "TASQUES_SERVER_BIND_ADDRESS": f"127.0.0.1:{args.server_port}",
        },
    )
    producer = Child(
        "producer",
        [py, "-m", "example_ciphers.producer", "--tasques", server_url, "--port", str(args.producer_port)],
        state / "producer.log",
    )
    worker_py = Child(
        "worker-py",
        [py, "-m", "example_ciphers.worker_py", "--server", server_url, "--worker-id", "python-1"],
        state / "worker-py.log",
    )
    worker_go = Child(
        "worker-go", [str(go_worker), "-server", server_url, "-worker-id", "go-1"], state / "worker-go.log"
    )
    children.extend([server, producer, worker_py, worker_go])

    def stopping() -> bool:
        return bool(signals)

    status = 0
    try:
        server.start()
        _wait_until_ready(server, f"{server_url}/health", stopping)
        producer.start()
        _wait_until_ready(producer, f"{producer_url}/", stopping)
        worker_py.start()
        worker_go.start()
        time.sleep(0.5)  # a worker that cannot start exits at once
        logs = state.relative_to(REPO) if state.is_relative_to(REPO) else state
        print(
            "\nThe Tasques ciphers example is running:\n"
            f"  open the producer   {producer_url}/\n"
            f"  Tasques server      {server_url}/  (Swagger UI: {server_url}/swagger; SQLite: {state / 'tasques.db'})\n"
            "  workers             python-1 (Python SDK), go-1 (Go, oapi-codegen client)\n"
            f"  logs                {logs}/{{server,producer,worker-py,worker-go}}.log\n"
            "Press Ctrl-C to stop everything.",
            flush=True,
        )
        while True:
            if stopping():
                raise Stopped
            for child in children:
                code = child.exited()
                if code is not None:
                    raise Failed(f"{child.name} exited {code}:\n{child.log_tail()}")
            time.sleep(0.2)
    except Stopped:
        print("\nexample_ciphers: stopping...", flush=True)
    except Failed as e:
        print(f"example_ciphers: {e}", file=sys.stderr, flush=True)
        status = 1
    finally:
        # The workers first (together), so they can still finish their tasks with the server; the server last.
        for group in ((worker_go, worker_py), (producer,), (server,)):
            for child in group:
                child.terminate()
            for child in group:
                child.stop()
    print("example_ciphers: stopped", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())

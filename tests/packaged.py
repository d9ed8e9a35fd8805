"""Servers from Debian's packages that the tests and benchmarks run for real (Redis, PostgreSQL, Prometheus).

`ensure_binaries` installs a package when its binary is missing (as root, with apt-get) and otherwise fails
loudly, naming the command to run: never a silent skip. `PackagedServer` is one such server run as our own
process, on a free loopback port, with its data in a fresh temp dir; the package's own service is never used.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

from tests.process import free_port


class PackageUnavailable(RuntimeError):
    """A packaged server could not be installed or started."""


def which(name: str) -> Path | None:
    found = shutil.which(name)
    return Path(found) if found else None  # not resolved: redis-server is a link to a binary that looks at argv[0]


def ensure_binaries(packages: Mapping[str, str], find: Callable[[str], Path | None] = which) -> None:
    """`packages` maps a binary to the Debian package that ships it; `find` locates a binary (None: missing)."""
    missing = sorted({pkg for binary, pkg in packages.items() if find(binary) is None})
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise PackageUnavailable(
            f"missing {', '.join(missing)}: install them (Debian: apt-get install -y {' '.join(missing)})"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]
    if subprocess.run(install, env=env, check=False).returncode != 0:
        # A fresh machine may have no package lists yet.
        subprocess.run(["apt-get", "update", "-q"], env=env, check=False)
        if subprocess.run(install, env=env, check=False).returncode != 0:
            raise PackageUnavailable(f"apt-get could not install {', '.join(missing)}")
    still = [binary for binary in packages if find(binary) is None]
    if still:
        raise PackageUnavailable(f"installed {', '.join(missing)} but {', '.join(still)} is still not found")


def version_of(binary: Path) -> str:
    """The first version-looking word of `binary --version` (e.g. "7.0.15", "2.42.0+ds")."""
    proc = subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=False)
    out = proc.stdout or proc.stderr
    for word in out.replace("=", " ").split():
        if word[:1].isdigit():
            return word
    return out.strip() or "?"


class PackagedServer:
    """A server process of ours, with its data in a fresh temp dir that is removed on stop."""

    name = "server"

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.dir = Path(tempfile.mkdtemp(prefix=f"tasques-{self.name}-"))
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def _spawn(self, argv: list[str], user: str | None = None) -> None:
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log, user=user)

    def _wait_until(self, ready: Callable[[], bool], within: float = 60.0) -> None:
        deadline = time.monotonic() + within
        while not ready():
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise PackageUnavailable(
                    f"{self.name} exited {self.proc.returncode} while starting; see {self.log_path}"
                )
            if time.monotonic() > deadline:
                raise PackageUnavailable(f"{self.name} not ready after {within:.0f}s; see {self.log_path}")
            time.sleep(0.05)

    def _listening(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError:
            return False
        return True

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the process this object started (by its pid), then remove the data."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self._log is not None:
            self._log.close()
            self._log = None
        shutil.rmtree(self.dir, ignore_errors=True)

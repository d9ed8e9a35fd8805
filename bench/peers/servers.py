"""The peers' servers: Redis and PostgreSQL from Debian's packages, on free loopback ports, data in a temp dir.

`ensure_installed()` installs the packages when a binary is missing (as root, with apt-get) and fails loudly
otherwise; `python -m bench.peers.servers` does just that (scripts/run-tests calls it before the tests).
PostgreSQL refuses to run as root, so as root it runs as an unprivileged system user (`postgres`, which
Debian's package creates, else one made here, as scripts/elasticsearch does for Elasticsearch).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

PG_USER = os.environ.get("TASQUES_PG_USER", "postgres")
# binary -> the Debian package that ships it
PACKAGES = {"redis-server": "redis-server", "postgres": "postgresql"}


class PeerUnavailable(RuntimeError):
    """A peer's server could not be installed or started: the benchmark run fails (never a silent skip)."""


def find_binary(name: str) -> Path | None:
    """On PATH, else (PostgreSQL's server tools) the newest /usr/lib/postgresql/<version>/bin."""
    found = shutil.which(name)
    if found:
        return Path(found)  # not resolved: redis-server is a link to a binary that looks at its argv[0]
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: int(p.parts[-3]))
    return candidates[-1] if candidates else None


def ensure_installed() -> None:
    missing = [pkg for binary, pkg in PACKAGES.items() if find_binary(binary) is None]
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise PeerUnavailable(
            f"missing {', '.join(missing)}: install them (Debian: apt-get install -y {' '.join(missing)})"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]
    if subprocess.run(install, env=env, check=False).returncode != 0:
        # A fresh machine may have no package lists yet.
        subprocess.run(["apt-get", "update", "-q"], env=env, check=False)
        if subprocess.run(install, env=env, check=False).returncode != 0:
            raise PeerUnavailable(f"apt-get could not install {', '.join(missing)}")
    still = [binary for binary in PACKAGES if find_binary(binary) is None]
    if still:
        raise PeerUnavailable(f"installed {', '.join(missing)} but {', '.join(still)} is still not found")


def _require(binary: str) -> Path:
    ensure_installed()
    found = find_binary(binary)
    if found is None:
        raise PeerUnavailable(f"{binary} not found (apt-get install {PACKAGES[binary]})")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _version(binary: Path) -> str:
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=False).stdout
    for word in out.replace("=", " ").split():
        if word[:1].isdigit():
            return word
    return out.strip() or "?"


class _Server:
    """A server process of ours, with its data in a fresh temp dir that is removed on stop."""

    name = "server"

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.dir = Path(tempfile.mkdtemp(prefix=f"tasques-bench-{self.name}-"))
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
                raise PeerUnavailable(f"{self.name} exited {self.proc.returncode} while starting; see {self.log_path}")
            if time.monotonic() > deadline:
                raise PeerUnavailable(f"{self.name} not ready after {within:.0f}s; see {self.log_path}")
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


class Redis(_Server):
    """redis-server, persistence like Tasques' SQLite store: an append-only file written (not fsynced) per write."""

    name = "redis"

    def start(self) -> Redis:
        binary = _require("redis-server")
        self.version = _version(binary)
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir), "--save", ""]
        args += ["--appendonly", "yes", "--appendfsync", "everysec", "--daemonize", "no"]
        self._spawn([str(binary), *args])
        self._wait_until(self._listening)
        return self

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def settings(self) -> str:
        return "appendonly yes, appendfsync everysec, no RDB snapshots"


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            raw = stat.read_text()
        except OSError:
            continue  # gone meanwhile
        if int(raw[raw.rindex(")") + 2 :].split()[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _pg_user() -> str | None:
    """The user PostgreSQL runs as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_USER],
            check=True,
        )
    return PG_USER


class Postgres(_Server):
    """A fresh PostgreSQL cluster; commits do not wait for the WAL fsync (like SQLite's synchronous=NORMAL)."""

    name = "postgres"
    SETTINGS = {"synchronous_commit": "off", "max_connections": "50"}

    def start(self) -> Postgres:
        postgres = _require("postgres")
        bindir = postgres.resolve().parent  # initdb and pg_isready sit beside the real binary
        initdb = bindir / "initdb"
        self.version = _version(postgres)
        user = _pg_user()
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        data = self.dir / "data"
        init = subprocess.run(
            [str(initdb), "-D", str(data), "-U", "postgres", "--auth=trust", "--no-locale", "-E", "UTF8", "--no-sync"],
            capture_output=True,
            text=True,
            user=user,
            check=False,
        )
        if init.returncode != 0:
            raise PeerUnavailable(f"initdb exited {init.returncode}: {init.stderr[-2000:]}")
        args = ["-D", str(data), "-p", str(self.port), "-c", "listen_addresses=127.0.0.1"]
        args += ["-c", f"unix_socket_directories={self.dir}"]
        for key, value in self.SETTINGS.items():
            args += ["-c", f"{key}={value}"]
        self._spawn([str(postgres), *args], user=user)
        probe = [str(bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"]
        self._wait_until(lambda: self._listening() and subprocess.run(probe, check=False).returncode == 0)
        return self

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def pids(self) -> list[int]:
        """The postmaster and its children: the backends of the connections open now, the WAL writer, ..."""
        return [self.pid, *_children(self.pid)]

    def settings(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.SETTINGS.items())

    def stop(self, sig: int = signal.SIGINT) -> None:  # SIGINT: PostgreSQL's fast shutdown
        super().stop(sig)


if __name__ == "__main__":
    try:
        ensure_installed()
    except PeerUnavailable as e:
        sys.exit(f"peers: {e}")
    for binary in PACKAGES:
        print(f"{binary}: {find_binary(binary)}")

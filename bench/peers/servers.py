"""The peers' servers: Redis and PostgreSQL from Debian's packages, on free loopback ports, data in a temp dir.

`ensure_installed()` installs the packages when a binary is missing (tests/packaged.py: as root, with apt-get)
and fails loudly otherwise; `python -m bench.peers.servers` does just that (scripts/run-tests calls it before
the tests).
PostgreSQL refuses to run as root, so as root it runs as an unprivileged system user (`postgres`, which
Debian's package creates, else one made here, as scripts/elasticsearch does for Elasticsearch).
"""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import sys
from pathlib import Path

from tests.packaged import PackagedServer, PackageUnavailable, ensure_binaries, version_of, which

PG_USER = os.environ.get("TASQUES_PG_USER", "postgres")
# binary -> the Debian package that ships it
PACKAGES = {"redis-server": "redis-server", "postgres": "postgresql"}


class PeerUnavailable(PackageUnavailable):
    """A peer's server could not be installed or started: the benchmark run fails (never a silent skip)."""


def find_binary(name: str) -> Path | None:
    """On PATH, else (PostgreSQL's server tools) the newest /usr/lib/postgresql/<version>/bin."""
    found = which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: int(p.parts[-3]))
    return candidates[-1] if candidates else None


def ensure_installed() -> None:
    try:
        ensure_binaries(PACKAGES, find_binary)
    except PackageUnavailable as e:
        raise PeerUnavailable(str(e)) from e


def _require(binary: str) -> Path:
    ensure_installed()
    found = find_binary(binary)
    if found is None:
        raise PeerUnavailable(f"{binary} not found (apt-get install {PACKAGES[binary]})")
    return found


class Redis(PackagedServer):
    """redis-server, persistence like Tasques' SQLite store: an append-only file written (not fsynced) per write."""

    name = "redis"

    def start(self) -> Redis:
        binary = _require("redis-server")
        self.version = version_of(binary)
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


class Postgres(PackagedServer):
    """A fresh PostgreSQL cluster; commits do not wait for the WAL fsync (like SQLite's synchronous=NORMAL)."""

    name = "postgres"
    SETTINGS = {"synchronous_commit": "off", "max_connections": "50"}

    def start(self) -> Postgres:
        postgres = _require("postgres")
        bindir = postgres.resolve().parent  # initdb and pg_isready sit beside the real binary
        initdb = bindir / "initdb"
        self.version = version_of(postgres)
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

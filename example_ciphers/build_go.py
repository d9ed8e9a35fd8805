"""Build the Go worker on the client that oapi-codegen generates from openapi.yaml; print the binary's path.

    python -m example_ciphers.build_go        # prints e.g. ~/.cache/tasques/example-ciphers/worker-go-<hash>/worker_go

The generated client is `scripts/gen-clients go`'s: the same pinned oapi-codegen (`OAPI_CODEGEN_VERSION` there)
and config (`clients/go/oapi-codegen.yaml`: models and client, package `tasques`). Its `tasques/` package is
copied next to `worker_go/`'s files in a build dir under the cache, never into the work tree, and built with
`-mod=readonly` against the pinned `worker_go/go.mod` and `go.sum`. A build is reused while the generated code
and `worker_go/` are unchanged.

Exit status (as a command): 0 built; 1 a step failed; 3 Go is not installed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SOURCES = HERE / "worker_go"
SOURCE_FILES = ("go.mod", "go.sum", "main.go", "ciphers.go")
GEN_CLIENTS = REPO / "scripts" / "gen-clients"
BINARY = "worker_go"
KEEP_BUILDS = 3


class BuildError(Exception):
    """The Go worker could not be built; the message says why, with the tool's output."""


class GoMissing(BuildError):
    """Go is not installed."""


def default_cache() -> Path:
    if os.environ.get("EXAMPLE_CIPHERS_CACHE"):
        return Path(os.environ["EXAMPLE_CIPHERS_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "tasques" / "example-ciphers"


@contextlib.contextmanager
def _locked(cache: Path) -> Iterator[None]:
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            cmd,
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=900,  # a cold cache installs oapi-codegen and downloads modules
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        raise BuildError(f"`{' '.join(cmd)}` timed out after {e.timeout}s") from e


def generated_client() -> Path:
    """The `tasques/` package `scripts/gen-clients go` generated (building it first if need be)."""
    proc = _run([sys.executable, str(GEN_CLIENTS), "go"], cwd=REPO)
    if proc.returncode == 3:
        raise GoMissing(f"Go is not installed: the example's Go worker needs it (go 1.24+).\n{proc.stderr.strip()}")
    if proc.returncode != 0:
        raise BuildError(f"`scripts/gen-clients go` exited {proc.returncode}:\n{proc.stderr.strip()}")
    language, _, directory = proc.stdout.strip().splitlines()[-1].partition(" ")
    package = Path(directory) / "tasques"
    if language != "go" or not (package / "client.gen.go").is_file():
        raise BuildError(f"`scripts/gen-clients go` printed no Go client:\n{proc.stdout}{proc.stderr}")
    return package


def _digest(package: Path) -> str:
    h = hashlib.sha256()
    for path in [*(SOURCES / name for name in SOURCE_FILES), *sorted(package.glob("*.go"))]:
        h.update(path.name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()[:16]


def _prune(cache: Path, keep: Path) -> None:
    """Keep the newest builds; remove older ones (and leftovers of crashed builds) unused for an hour."""
    builds = sorted(cache.glob("worker-go-*"), key=lambda p: p.stat().st_mtime, reverse=True)
    stale = [p for p in builds if p != keep and ".tmp-" not in p.name][KEEP_BUILDS - 1 :]
    stale += [p for p in builds if ".tmp-" in p.name]
    for path in stale:
        if time.time() - path.stat().st_mtime > 3600:  # another run may still be using a recent one
            shutil.rmtree(path, ignore_errors=True)


def build(cache: Path | None = None) -> Path:
    """Build (or reuse) the Go worker; return the path of its binary. Raises GoMissing or BuildError."""
    go = shutil.which("go")
    if go is None:
        raise GoMissing("Go is not installed (`go` is not on PATH): the example's Go worker needs it (go 1.24+)")
    package = generated_client()
    cache = (cache or default_cache()).resolve()
    target = cache / f"worker-go-{_digest(package)}"
    with _locked(cache):
        if not (target / ".complete").exists():
            tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            try:
                for name in SOURCE_FILES:
                    shutil.copy2(SOURCES / name, tmp / name)
                shutil.copytree(package, tmp / "tasques")
                goflags = f"{os.environ.get('GOFLAGS', '')} -mod=readonly".strip()  # go.mod/go.sum pin everything
                proc = _run([go, "build", "-o", BINARY, "."], cwd=tmp, env={"GOFLAGS": goflags})
                if proc.returncode != 0:
                    raise BuildError(f"`go build` of the Go worker failed:\n{proc.stdout}{proc.stderr}".strip())
                (tmp / ".complete").write_text(time.strftime("%Y-%m-%dT%H:%M:%S%z\n"))
                shutil.rmtree(target, ignore_errors=True)
                tmp.rename(target)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        target.touch()
        _prune(cache, target)
    return target / BINARY


def main() -> int:
    try:
        print(build(), flush=True)
    except GoMissing as e:
        print(f"build_go: {e}", file=sys.stderr)
        return 3
    except BuildError as e:
        print(f"build_go: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

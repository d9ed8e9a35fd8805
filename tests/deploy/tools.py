"""The pinned tools that validate k8s/: kustomize, built from the Go module proxy with this machine's Go, and
the CRDs of ECK and of the Prometheus operator, taken from their Go modules. Each is fetched once into a cache
outside the git tree; later runs read the cache and need no network. Anything missing raises `ToolUnavailable`
naming what to do: never a skip. `python -m tests.deploy.tools` fetches all of them (scripts/run-tests)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.process import cache_root

KUSTOMIZE = "sigs.k8s.io/kustomize/kustomize/v5"
# v5.8.3 needs Go 1.27; this machine (and CI's) has 1.26.
KUSTOMIZE_VERSION = "v5.8.2"
ECK_MODULE = "github.com/elastic/cloud-on-k8s/v3"
# The ECK release whose CRDs the manifests are validated against; k8s/README.md installs the same one.
ECK_VERSION = "v3.5.0"
PROMETHEUS_OPERATOR_MODULE = "github.com/prometheus-operator/prometheus-operator"
PROMETHEUS_OPERATOR_VERSION = "v0.85.0"
# The Kubernetes release whose OpenAPI schemas (shipped by kubernetes-validate) the core kinds must match.
KUBERNETES_VERSION = "1.35"

_ECK_CRDS = "config/crds/v1/all-crds.yaml"
_SERVICEMONITOR_CRD = "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml"


class ToolUnavailable(RuntimeError):
    """A tool could not be found or installed."""


def cache_dir() -> Path:
    """`deploy` under the harness's cache root; TASQUES_TOOLS_CACHE wins."""
    override = os.environ.get("TASQUES_TOOLS_CACHE")
    return Path(override) if override else cache_root() / "deploy"


def kustomize() -> Path:
    """The pinned kustomize binary, built on first use."""
    target = cache_dir() / f"kustomize-{KUSTOMIZE_VERSION}" / "kustomize"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        _go("install", f"{KUSTOMIZE}@{KUSTOMIZE_VERSION}", extra_env={"GOBIN": tmp})
        os.replace(Path(tmp) / "kustomize", target)  # atomic: a half-built binary is never found
    return target


def eck_crds() -> Path:
    """ECK's all-crds.yaml (every ECK CustomResourceDefinition) at the pinned release."""
    return _module_file(ECK_MODULE, ECK_VERSION, _ECK_CRDS, f"eck-{ECK_VERSION}")


def servicemonitor_crd() -> Path:
    """The Prometheus operator's ServiceMonitor CRD at the pinned release."""
    return _module_file(
        PROMETHEUS_OPERATOR_MODULE,
        PROMETHEUS_OPERATOR_VERSION,
        _SERVICEMONITOR_CRD,
        f"prometheus-operator-{PROMETHEUS_OPERATOR_VERSION}",
    )


def _module_file(module: str, version: str, path: str, folder: str) -> Path:
    target = cache_dir() / folder / Path(path).name
    if target.exists():
        return target
    out = _go("mod", "download", "-json", f"{module}@{version}")
    source = Path(json.loads(out)["Dir"]) / path
    if not source.is_file():
        raise ToolUnavailable(f"{module}@{version} has no {path}")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    shutil.copyfile(source, partial)
    os.replace(partial, target)
    return target


def _go(*args: str, extra_env: dict[str, str] | None = None) -> str:
    go = shutil.which("go")
    if go is None:
        raise ToolUnavailable("the go command is missing: install Go 1.26 (it builds kustomize and fetches the CRDs)")
    # GOTOOLCHAIN=local: this machine's Go, never a downloaded one. GOFLAGS replaced (a user's -mod=vendor
    # must not change what is fetched); -modcacherw leaves the module cache deletable.
    env = {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-modcacherw", **(extra_env or {})}
    proc = subprocess.run([go, *args], capture_output=True, text=True, check=False, env=env, cwd=tempfile.gettempdir())
    if proc.returncode != 0:
        raise ToolUnavailable(f"go {' '.join(args)} failed:\n{proc.stderr.strip()}")
    return proc.stdout


def main() -> int:
    try:
        print(f"kustomize {KUSTOMIZE_VERSION}: {kustomize()}")
        print(f"ECK {ECK_VERSION} CRDs: {eck_crds()}")
        print(f"prometheus-operator {PROMETHEUS_OPERATOR_VERSION} ServiceMonitor CRD: {servicemonitor_crd()}")
    except ToolUnavailable as e:
        print(f"deploy tools: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

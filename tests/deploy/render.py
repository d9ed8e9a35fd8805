"""k8s/ rendered with the pinned kustomize, and look-ups in the rendered objects."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.tools import kustomize

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
OVERLAYS = ("dev", "prod")
COMPONENTS = tuple(sorted(p.name for p in (K8S / "components").iterdir() if p.is_dir()))

Object = dict[str, Any]


def build(path: Path) -> list[Object]:
    """`kustomize build path` as a list of objects."""
    proc = subprocess.run([str(kustomize()), "build", str(path)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"kustomize build {path} failed:\n{proc.stderr}")
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def build_with(overlay: str, components: Sequence[str], workdir: Path) -> list[Object]:
    """An overlay with optional components added, as a user's own kustomization would add them."""

    def rel(path: Path) -> str:  # kustomize refuses absolute paths to other kustomizations
        return os.path.relpath(path, workdir)

    overlay_dir = K8S / "overlays" / overlay
    namespace = yaml.safe_load((overlay_dir / "kustomization.yaml").read_text())["namespace"]
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": namespace,  # as the overlay's own, where a user would list the components
        "resources": [rel(overlay_dir)],
        "components": [rel(K8S / "components" / name) for name in components],
    }
    (workdir / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return build(workdir)


def one(objects: Sequence[Object], kind: str, name: str | None = None) -> Object:
    found = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def of_kind(objects: Sequence[Object], kind: str) -> list[Object]:
    return [o for o in objects if o["kind"] == kind]


def pod_spec(obj: Object) -> Object:
    """The pod spec of a Deployment or a Job."""
    spec: Object = obj["spec"]["template"]["spec"]
    return spec


def selects(selector: Object, labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels only, as k8s/ uses) matches `labels`."""
    assert set(selector) <= {"matchLabels"}, f"unsupported selector {selector}"
    match: dict[str, str] = selector.get("matchLabels", {})
    return bool(match) and all(labels.get(k) == v for k, v in match.items())

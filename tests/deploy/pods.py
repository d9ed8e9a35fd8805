"""What a rendered pod would see: its environment, the files its mounts put at a path, the configuration the
server would load, and the ECK names (services, secrets) it refers to."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasques.config import Config, load_config
from tests.conftest import REPO
from tests.deploy.dockerfile import Dockerfile, exec_form
from tests.deploy.render import Object, of_kind

# The image's own settings, read from the Dockerfile's final stage: a pod's env is applied over them, and its
# command names the config file.
_IMAGE = Dockerfile(REPO / "Dockerfile")
IMAGE_ENV = {k: v for k, v in _IMAGE.env(_IMAGE.final).items() if k.startswith("TASQUES_")}
_CMD = exec_form(_IMAGE.final.last("CMD"))
CONFIG_PATH = _CMD[_CMD.index("--config") + 1]
# What a value read from a secret stands for in the tests: any string is a valid password or token.
SECRET_PLACEHOLDER = "from-a-secret"
# ECK's names for a resource called NAME (pkg/apis/*/name.go in the ECK module) and each service's port.
# kind: (the short name in every name, the secrets' suffixes, the https port of NAME-SHORT-http)
ECK_NAMES: dict[str, tuple[str, tuple[str, ...], int]] = {
    "Elasticsearch": ("es", ("elastic-user", "http-certs-public"), 9200),
    "Kibana": ("kb", ("http-certs-public",), 5601),
    "ApmServer": ("apm", ("token", "http-certs-public"), 8200),
}
_URL = re.compile(r"(?P<scheme>[a-z]+)://(?P<host>[A-Za-z0-9.-]+):(?P<port>\d+)")


@dataclass(frozen=True)
class Source:
    """Where a file or a value comes from: a key of a ConfigMap or a Secret."""

    kind: str  # "configMap" or "secret"
    name: str
    key: str


def container(pod: Object, name: str) -> Object:
    found: list[Object] = [c for c in pod["containers"] if c["name"] == name]
    assert len(found) == 1, f"no container {name}"
    return found[0]


def env(c: Object) -> dict[str, str]:
    """The container's environment over the image's; a value from a secret becomes SECRET_PLACEHOLDER."""
    out = dict(IMAGE_ENV)
    for var in c.get("env", []):
        if "value" in var:
            out[var["name"]] = var["value"]
        else:
            assert "secretKeyRef" in var.get("valueFrom", {}), f"{var['name']}: only secrets are resolved here"
            out[var["name"]] = SECRET_PLACEHOLDER
    assert "envFrom" not in c, "envFrom hides which variables a pod gets"
    return out


def file_source(pod: Object, c: Object, path: str) -> Source:
    """The ConfigMap or Secret key a file path of the container is mounted from."""
    for mount in c.get("volumeMounts", []):
        prefix = mount["mountPath"].rstrip("/") + "/"
        if not path.startswith(prefix):
            continue
        volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
        rel = path[len(prefix) :]
        for kind, name_field in (("configMap", "name"), ("secret", "secretName")):
            if kind in volume:
                items = volume[kind].get("items")
                keys = {item["path"]: item["key"] for item in items} if items else {rel: rel}
                assert rel in keys, f"{path}: {mount['name']} has no item at {rel}"
                return Source(kind, volume[kind][name_field], keys[rel])
        raise AssertionError(f"{path}: volume {mount['name']} is neither a ConfigMap nor a Secret")
    raise AssertionError(f"{path} is on no mount of container {c['name']}")


def config_files(objects: Sequence[Object]) -> dict[str, str]:
    """config.yaml of every ConfigMap, by the ConfigMap's name."""
    return {cm["metadata"]["name"]: cm["data"]["config.yaml"] for cm in of_kind(objects, "ConfigMap")}


def server_config(objects: Sequence[Object], pod: Object, c: Object, workdir: Path) -> Config:
    """The configuration the server in `c` loads: CONFIG_PATH from its ConfigMap, then its TASQUES_* env."""
    source = file_source(pod, c, CONFIG_PATH)
    assert (source.kind, source.key) == ("configMap", "config.yaml"), source
    path = workdir / "config.yaml"
    path.write_text(config_files(objects)[source.name])
    return load_config(path, {k: v for k, v in env(c).items() if k.startswith("TASQUES_")})


def secret_refs(pod: Object) -> Iterator[Source]:
    """Every secret key the pod reads (env values and secret volumes)."""
    for c in pod["containers"] + pod.get("initContainers", []):
        for var in c.get("env", []):
            ref = var.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                yield Source("secret", ref["name"], ref["key"])
    for volume in pod.get("volumes", []):
        if "secret" in volume:
            for item in volume["secret"].get("items", []):
                yield Source("secret", volume["secret"]["secretName"], item["key"])


def urls(c: Object) -> Iterator[tuple[str, str, int]]:
    """(scheme, host, port) of every URL in the container's env values and args."""
    texts = [var.get("value", "") for var in c.get("env", [])] + list(c.get("args", [])) + list(c.get("command", []))
    for text in texts:
        for m in _URL.finditer(text):
            yield m["scheme"], m["host"], int(m["port"])


def eck_created(objects: Sequence[Object]) -> tuple[set[str], dict[str, int]]:
    """The secrets and (https) services, with their ports, that ECK creates for the rendered ECK resources."""
    secrets: set[str] = set()
    services: dict[str, int] = {}
    for kind, (short, suffixes, port) in ECK_NAMES.items():
        for obj in of_kind(objects, kind):
            base = f"{obj['metadata']['name']}-{short}"
            secrets.update(f"{base}-{suffix}" for suffix in suffixes)
            services[f"{base}-http"] = port
    return secrets, services


def option(args: Sequence[str], flag: str) -> str:
    """The value after `flag` in an argument list."""
    assert args.count(flag) == 1, f"{flag} not given exactly once in {args}"
    return args[list(args).index(flag) + 1]


def labels_of(template: Mapping[str, Any]) -> dict[str, str]:
    found: dict[str, str] = template.get("metadata", {}).get("labels", {})
    return found

"""Strict validation of rendered Kubernetes objects: an unknown field anywhere is an error.

Core kinds go to kubernetes-validate's strict schemas of one pinned Kubernetes release. Custom kinds go to the
openAPIV3Schema of their CRD version (ECK's, the Prometheus operator's), made strict the way the API server
prunes: a schema that lists `properties` admits no others unless it says `x-kubernetes-preserve-unknown-fields`
(the API server would silently drop them, so a typo would vanish unnoticed). The parts a CRD leaves open but its
operator decodes as core types are checked as those: `metadata` as ObjectMeta, each `podTemplate` as a
PodTemplateSpec. A kind that is neither core nor a known CRD is an error too.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

from tests.deploy.render import Object
from tests.deploy.tools import KUBERNETES_VERSION

_SUBSCHEMA_LISTS = ("allOf", "anyOf", "oneOf")


class Invalid(AssertionError):
    """A manifest object that does not match its schema, or has none."""


def strict(schema: Any) -> Any:
    """A copy of a CRD's structural schema with `additionalProperties: false` wherever it lists properties
    and neither preserves unknown fields nor sets additionalProperties itself."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    if "properties" in out:
        out["properties"] = {name: strict(sub) for name, sub in out["properties"].items()}
    if "items" in out:
        out["items"] = strict(out["items"])
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = strict(out["additionalProperties"])
    for key in _SUBSCHEMA_LISTS:
        if key in out:
            out[key] = [strict(sub) for sub in out[key]]
    if "not" in out:
        out["not"] = strict(out["not"])
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def load_all(text: str) -> list[Any]:
    """YAML documents, with libyaml's parser: ECK's CRDs are 4 MB."""
    return list(yaml.load_all(text, Loader=yaml.CSafeLoader))


class CustomKinds:
    """The served versions of the CRDs in some CRD files, by (apiVersion, kind)."""

    def __init__(self, crd_files: Iterable[Path]) -> None:
        self._validators: dict[tuple[str, str], jsonschema.protocols.Validator] = {}
        for path in crd_files:
            for crd in load_all(path.read_text()):
                if not crd or crd.get("kind") != "CustomResourceDefinition":
                    continue
                spec = crd["spec"]
                for version in spec["versions"]:
                    if not version.get("served") or version.get("deprecated"):
                        continue  # an object written today must use a version the operator still serves
                    schema = strict(version["schema"]["openAPIV3Schema"])
                    key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
                    self._validators[key] = jsonschema.Draft202012Validator(schema)

    def validator(self, api_version: str, kind: str) -> jsonschema.protocols.Validator | None:
        return self._validators.get((api_version, kind))


def describe(obj: Object) -> str:
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')} ({obj.get('apiVersion')})"


def validate(obj: Object, custom: CustomKinds) -> None:
    """Raise `Invalid` naming the object, the path and the problem."""
    api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
    validator = custom.validator(api_version, kind)
    if validator is None:
        _core(obj, describe(obj))
        return
    errors = sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        raise Invalid("\n".join(f"{describe(obj)}: {_where(e.absolute_path)}: {e.message}" for e in errors))
    # What the CRD leaves open but the operator decodes as core types: checked with the core schemas, wrapped
    # in a PodTemplate (a core kind holding exactly an ObjectMeta and a PodTemplateSpec).
    _core({"apiVersion": "v1", "kind": "PodTemplate", "metadata": obj.get("metadata", {})}, f"{describe(obj)} metadata")
    for where, template in _pod_templates(obj.get("spec", {}), "spec"):
        wrapped = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "x"}, "template": template}
        _core(wrapped, f"{describe(obj)} {where}")


def _core(obj: Object, what: str) -> None:
    try:
        kubernetes_validate.validate(copy.deepcopy(obj), KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        raise Invalid(f"{what}: {_where(e.path)}: {e.message}") from None
    except kubernetes_validate.SchemaNotFoundError:
        raise Invalid(
            f"{what}: neither a Kubernetes {KUBERNETES_VERSION} kind nor one of the CRDs the tests know"
        ) from None


def _pod_templates(node: Any, where: str) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "podTemplate":
                yield f"{where}.{key}", value
            else:
                yield from _pod_templates(value, f"{where}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _pod_templates(value, f"{where}[{i}]")


def _where(path: Iterable[Any]) -> str:
    return ".".join(map(str, path)) or "(top level)"

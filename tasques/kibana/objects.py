"""The shipped saved objects, and their copy for another `index_prefix`."""

from __future__ import annotations

import copy
import json
import re
from importlib import resources
from typing import Any

SavedObject = dict[str, Any]

# The prefix the shipped file is written for: ElasticsearchConfig.index_prefix's default.
DEFAULT_PREFIX = "tasques"
# What Elasticsearch accepts at the start of an index name (lower case; no `*?"<>|,#:\/` or spaces; not
# starting with `-`, `_` or `+`), short enough to leave room for the suffixes Tasques adds.
_PREFIX = re.compile(r"[a-z0-9][a-z0-9._-]{0,199}")


class BadPrefix(ValueError):
    """An index prefix Elasticsearch would refuse."""


def ndjson_text() -> str:
    """The shipped file, as is."""
    return resources.files(__package__).joinpath("tasques.ndjson").read_text(encoding="utf-8")


def load() -> list[SavedObject]:
    return [json.loads(line) for line in ndjson_text().splitlines() if line.strip()]


def for_prefix(objects: list[SavedObject], prefix: str) -> list[SavedObject]:
    """The objects for indices under `prefix`: data view patterns, every id (and so every reference) and the
    titles name it, so the objects of several prefixes can live side by side in one Kibana space."""
    if not _PREFIX.fullmatch(prefix):
        raise BadPrefix(f"index prefix {prefix!r}: use lower-case letters, digits, '.', '_' and '-'")
    if prefix == DEFAULT_PREFIX:
        return objects
    out = copy.deepcopy(objects)
    for obj in out:
        obj["id"] = _renamed(obj["id"], prefix)
        for ref in obj["references"]:
            ref["id"] = _renamed(ref["id"], prefix)
        attrs = obj["attributes"]
        if obj["type"] == "index-pattern":
            attrs["title"] = ",".join(_renamed(p, prefix) for p in attrs["title"].split(","))
            attrs["name"] = f"{attrs['name']} [{prefix}]"
        else:
            attrs["title"] = f"{attrs['title']} [{prefix}]"
    return out


def _renamed(name: str, prefix: str) -> str:
    head = f"{DEFAULT_PREFIX}-"
    if not name.startswith(head):
        raise ValueError(f"{name!r} does not start with {head!r}")  # the shipped file breaks its own rule
    return f"{prefix}-{name[len(head) :]}"


def to_ndjson(objects: list[SavedObject]) -> bytes:
    return "".join(json.dumps(o, separators=(",", ":"), sort_keys=True) + "\n" for o in objects).encode()

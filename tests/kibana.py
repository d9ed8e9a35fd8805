"""What the shipped Kibana objects ask of Elasticsearch: the fields each one names, on which data view, and
whether Kibana aggregates (or sorts) on them. Shared by the offline and the real-cluster tests."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from tasques.kibana.objects import SavedObject

# Lens 8.0's pseudo-field for a document count: no index field.
LENS_RECORDS = "Records"
# `field:` in a Lucene query string (quoted values and escaped characters are not used by our queries).
_LUCENE_FIELD = re.compile(r"(?<![\w.])([A-Za-z_][\w.]*)\s*:")


@dataclass(frozen=True)
class FieldUse:
    obj: str  # the saved object's id
    data_view: str  # id of the data view the field is looked up on
    field: str
    aggregated: bool  # aggregated or sorted on: needs doc values


def lucene_fields(query: str) -> list[str]:
    return _LUCENE_FIELD.findall(query)


def by_id(objects: list[SavedObject]) -> dict[str, SavedObject]:
    return {o["id"]: o for o in objects}


def ref(obj: SavedObject, name: str) -> str:
    (found,) = [r["id"] for r in obj["references"] if r["name"] == name]
    return str(found)


def search_source(obj: SavedObject) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(obj["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
    return parsed


def runtime_fields(data_view: SavedObject) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(data_view["attributes"].get("runtimeFieldMap") or "{}")
    return parsed


def lens_layers(lens: SavedObject) -> dict[str, Any]:
    layers: dict[str, Any] = lens["attributes"]["state"]["datasourceStates"]["indexpattern"]["layers"]
    return layers


def lucene_queries(obj: SavedObject) -> list[str]:
    """Every query string of a search or Lens object (their query bar, Lens column filters), all Lucene."""
    if obj["type"] == "search":
        queries = [search_source(obj)["query"]]
    elif obj["type"] == "lens":
        state = obj["attributes"]["state"]
        queries = [state["query"]]
        queries += [
            c["filter"] for layer in lens_layers(obj).values() for c in layer["columns"].values() if "filter" in c
        ]
    else:
        queries = [search_source(obj)["query"]]
    assert all(q["language"] == "lucene" for q in queries), obj["id"]
    return [str(q["query"]) for q in queries]


def field_uses(objects: list[SavedObject]) -> list[FieldUse]:
    uses: list[FieldUse] = []
    for obj in objects:
        oid, kind = obj["id"], obj["type"]
        if kind == "index-pattern":
            uses.append(FieldUse(oid, oid, obj["attributes"]["timeFieldName"], aggregated=True))
        elif kind == "search":
            dv = ref(obj, search_source(obj)["indexRefName"])
            uses += [FieldUse(oid, dv, f, aggregated=False) for f in obj["attributes"]["columns"]]
            uses += [FieldUse(oid, dv, f, aggregated=True) for f, _ in obj["attributes"]["sort"]]
            uses += [FieldUse(oid, dv, f, aggregated=False) for q in lucene_queries(obj) for f in lucene_fields(q)]
        elif kind == "lens":
            for layer_id, layer in lens_layers(obj).items():
                dv = ref(obj, f"indexpattern-datasource-layer-{layer_id}")
                for column in layer["columns"].values():
                    if column["sourceField"] != LENS_RECORDS:
                        uses.append(FieldUse(oid, dv, column["sourceField"], aggregated=True))
                uses += [FieldUse(oid, dv, f, aggregated=False) for q in lucene_queries(obj) for f in lucene_fields(q)]
    return uses

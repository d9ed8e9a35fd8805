"""kibana/tasques.ndjson: what Kibana 8.x and 9.x need to import it, references that resolve inside the file,
and fields that exist (and aggregate where Kibana aggregates) in the mappings our code creates."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import pytest

from tasques.kibana.objects import DEFAULT_PREFIX, BadPrefix, for_prefix, load, ndjson_text, to_ndjson
from tasques.store.elasticsearch.mappings import IndexNames, archive_mappings, task_mappings
from tests.kibana import by_id, field_uses, lens_layers, runtime_fields, search_source

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "kibana" / "tasques.ndjson"
# Written for Kibana 8.0.0: 8.x imports objects of its own or an older version, 9.x those of the previous major;
# both migrate them forward on import. Each of these types was converted to a multi-space type in 8.0.0, so
# "8.0.0" is a version every 8.x and 9.x Kibana knows for it (a later one would be refused by an older 8.x).
KIBANA_VERSION = "8.0.0"
TYPES = {"index-pattern", "search", "lens", "dashboard"}
# Attributes each type may carry: known to Kibana 8.0's mappings of the type and allowed by the strictest
# `create` schema Kibana 9.x validates an import against (search and dashboard forbid unknown attributes).
ALLOWED_ATTRIBUTES = {
    "index-pattern": {"title", "name", "timeFieldName", "fields", "runtimeFieldMap", "fieldFormatMap"},
    "search": {"title", "description", "columns", "sort", "kibanaSavedObjectMeta"},
    "lens": {"title", "description", "visualizationType", "state"},
    "dashboard": {
        "title",
        "description",
        "panelsJSON",
        "optionsJSON",
        "version",
        "timeRestore",
        "timeFrom",
        "timeTo",
        "refreshInterval",
        "kibanaSavedObjectMeta",
    },
}
_AGGREGATABLE = {"keyword", "date", "date_nanos", "integer", "long", "short", "byte", "double", "float", "boolean"}


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return load()


def test_every_line_is_one_json_object() -> None:
    lines = SHIPPED.read_text().splitlines()
    assert lines
    for n, line in enumerate(lines, 1):
        assert isinstance(json.loads(line), dict), f"line {n}"


def test_the_packaged_copy_is_the_top_level_file() -> None:
    assert ndjson_text() == SHIPPED.read_text()
    assert to_ndjson(load()) == SHIPPED.read_bytes()  # what the import sends for the default prefix


def test_the_file_is_what_kibana_generate_writes() -> None:
    spec = importlib.util.spec_from_file_location("kibana_generate", REPO / "kibana" / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.render() == SHIPPED.read_text(), "run `python kibana/generate.py` and commit the result"


def test_objects_carry_what_the_import_api_needs_for_8_and_9(objects: list[dict[str, Any]]) -> None:
    ids = [(o["type"], o["id"]) for o in objects]
    assert len(set(ids)) == len(ids)
    for obj in objects:
        assert set(obj) == {"type", "id", "attributes", "references", "migrationVersion", "coreMigrationVersion"}
        assert obj["type"] in TYPES
        assert obj["id"].startswith(f"{DEFAULT_PREFIX}-")
        # 8.8+ turns migrationVersion into typeMigrationVersion on import; 8.0-8.7 know only migrationVersion.
        assert obj["migrationVersion"] == {obj["type"]: KIBANA_VERSION}
        assert obj["coreMigrationVersion"] == KIBANA_VERSION
        assert isinstance(obj["attributes"]["title"], str)
        assert obj["attributes"]["title"]
        assert set(obj["attributes"]) <= ALLOWED_ATTRIBUTES[obj["type"]], obj["id"]
        for reference in obj["references"]:
            assert set(reference) == {"type", "id", "name"}
    assert {o["type"] for o in objects} == TYPES


def test_every_reference_resolves_inside_the_file(objects: list[dict[str, Any]]) -> None:
    known = {(o["type"], o["id"]) for o in objects}
    for obj in objects:
        names = [r["name"] for r in obj["references"]]
        assert len(set(names)) == len(names), obj["id"]
        for reference in obj["references"]:
            assert (reference["type"], reference["id"]) in known, (obj["id"], reference)


def test_embedded_references_name_a_reference(objects: list[dict[str, Any]]) -> None:
    for obj in objects:
        names = {r["name"]: r for r in obj["references"]}
        if obj["type"] == "search":
            assert names[search_source(obj)["indexRefName"]]["type"] == "index-pattern"
        elif obj["type"] == "lens":
            assert names["indexpattern-datasource-current-indexpattern"]["type"] == "index-pattern"
            for layer_id, layer in lens_layers(obj).items():
                assert names[f"indexpattern-datasource-layer-{layer_id}"]["type"] == "index-pattern"
                assert sorted(layer["columnOrder"]) == sorted(layer["columns"])
            for vis_layer in obj["attributes"]["state"]["visualization"]["layers"]:
                columns = lens_layers(obj)[vis_layer["layerId"]]["columns"]
                wanted = [vis_layer["xAccessor"], *vis_layer["accessors"], vis_layer.get("splitAccessor")]
                assert all(a in columns for a in wanted if a is not None), obj["id"]
                for column in columns.values():
                    order = column.get("params", {}).get("orderBy", {})
                    assert order.get("type") != "column" or order["columnId"] in columns
        elif obj["type"] == "dashboard":
            panels = json.loads(obj["attributes"]["panelsJSON"])
            json.loads(obj["attributes"]["optionsJSON"])
            assert len(panels) == len(obj["references"])
            for panel in panels:
                reference = names[panel["panelRefName"]]  # 8.0 looks the reference up by this name
                assert panel["type"] == reference["type"]
                # 9.x takes the panel id from what follows "panel_" in the reference name
                assert reference["name"] == f"panel_{panel['panelIndex']}" == panel["panelRefName"]
                assert panel["gridData"]["i"] == panel["panelIndex"]


def test_data_views_cover_the_live_index_and_the_archive_alias(objects: list[dict[str, Any]]) -> None:
    names = IndexNames(DEFAULT_PREFIX)
    titles = {o["attributes"]["title"] for o in objects if o["type"] == "index-pattern"}
    assert titles == {names.tasks, names.archive_alias, f"{names.tasks},{names.archive_alias}"}
    # Kibana sends a data view's runtime fields with each of its searches: one script-carrying view only
    assert sum(1 for o in objects if o["type"] == "index-pattern" and runtime_fields(o)) == 1


def _flatten(properties: dict[str, Any], prefix: str = "") -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, spec in properties.items():
        path = f"{prefix}{name}"
        if "properties" in spec:
            out.update(_flatten(spec["properties"], f"{path}."))
        elif spec.get("enabled", True):
            out[path] = spec
    return out


def _aggregatable(spec: dict[str, Any]) -> bool:
    return spec.get("type") in _AGGREGATABLE and spec.get("doc_values", True) and spec.get("index", True)


def test_every_field_named_exists_in_our_mappings_and_aggregates_where_used(objects: list[dict[str, Any]]) -> None:
    names = IndexNames(DEFAULT_PREFIX)
    mapping_of = {
        names.tasks: _flatten(task_mappings()["properties"]),
        names.archive_alias: _flatten(archive_mappings()["properties"]),
    }
    objs = by_id(objects)
    uses = field_uses(objects)
    assert {u.field for u in uses} >= {"state", "queue", "kind", "run_at", "last_claimed.claimed_at"}
    for use in uses:
        data_view = objs[use.data_view]
        if use.field in runtime_fields(data_view):
            assert runtime_fields(data_view)[use.field]["type"] in {"double", "long", "keyword", "date"}
            continue
        specs = [
            mapping_of[p][use.field] for p in data_view["attributes"]["title"].split(",") if use.field in mapping_of[p]
        ]
        assert specs, f"{use.obj}: {use.field} is in no index of {data_view['attributes']['title']}"
        if use.aggregated:
            assert all(_aggregatable(s) for s in specs), f"{use.obj}: {use.field} {specs} cannot be aggregated"


def test_a_runtime_field_reads_only_mapped_aggregatable_fields(objects: list[dict[str, Any]]) -> None:
    mapped = _flatten(task_mappings()["properties"])
    for obj in objects:
        for name, runtime in runtime_fields(obj).items() if obj["type"] == "index-pattern" else ():
            assert name not in mapped
            for field in re.findall(r"doc\['([^']+)'\]", runtime["script"]["source"]):
                assert _aggregatable(mapped[field]), field


def test_another_prefix_renames_ids_references_patterns_and_titles(objects: list[dict[str, Any]]) -> None:
    renamed = for_prefix(objects, "acme")
    assert for_prefix(objects, DEFAULT_PREFIX) == objects
    assert len(renamed) == len(objects)
    known = {(o["type"], o["id"]) for o in renamed}
    for before, after in zip(objects, renamed, strict=True):
        assert after["id"] == "acme-" + before["id"].removeprefix("tasques-")
        assert all((r["type"], r["id"]) in known for r in after["references"])
        assert after["attributes"]["title"] != before["attributes"]["title"]
    titles = {o["attributes"]["title"] for o in renamed if o["type"] == "index-pattern"}
    assert titles == {"acme-tasks", "acme-archive", "acme-tasks,acme-archive"}
    assert all("tasques-" not in json.dumps(r) for o in renamed for r in o["references"])
    assert objects == load()  # the shipped objects are left alone


@pytest.mark.parametrize("prefix", ["", "Upper", "-dash", "with space", "a,b", "a*", "x" * 201])
def test_a_prefix_elasticsearch_would_refuse_is_refused(objects: list[dict[str, Any]], prefix: str) -> None:
    with pytest.raises(BadPrefix):
        for_prefix(objects, prefix)

"""Writes kibana/tasques.ndjson, the Kibana saved objects Tasques ships: `python kibana/generate.py`.

The NDJSON is what ships and what `tasques kibana import` sends; this script is how it is authored, because
Kibana's format nests JSON inside JSON strings. A test checks that the committed file is this script's output.

Every object is written in Kibana 8.0.0's format and marked `migrationVersion: {type: "8.0.0"}` with
`coreMigrationVersion: "8.0.0"`: Kibana imports objects of its own or an older version and migrates them forward
on import, so one file serves 8.0 through 9.x (see kibana/README.md).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tasques.domain.task import GIVEN_UP_BY, TaskState

OUT = Path(__file__).resolve().parent / "tasques.ndjson"
# The version every object is written for: the oldest Kibana the file supports.
KIBANA_VERSION = "8.0.0"
PREFIX = "tasques"  # ElasticsearchConfig.index_prefix's default; `tasques kibana import` rewrites it
TIME_FIELD = "metadata.modified_at"  # when the task last changed (created, claimed, finished, ...)
RECORDS = "Records"  # Lens 8.0's pseudo-field of a document count (8.1 migrates it to ___records___)
LATENCY = "claim_latency_seconds"

Obj = dict[str, Any]


def _saved(kind: str, oid: str, attributes: Obj, references: list[Obj]) -> Obj:
    return {
        "type": kind,
        "id": oid,
        "attributes": attributes,
        "references": references,
        "migrationVersion": {kind: KIBANA_VERSION},
        "coreMigrationVersion": KIBANA_VERSION,
    }


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


# Data views

# Seconds from `run_at` to the last claim, for claims a worker (or the dispatcher) made. Left out: tasks never
# claimed, tasks whose claim record the server wrote when giving up on them, and tasks rescheduled after that
# claim (a failure or a repeat moves `run_at` past it).
LATENCY_SCRIPT = " ".join(
    (
        "if (doc['last_claimed.claimed_at'].size() == 0 || doc['run_at'].size() == 0) { return; }",
        "if (doc['last_claimed.worker_id'].size() > 0",
        f"&& doc['last_claimed.worker_id'].value == '{GIVEN_UP_BY}') {{ return; }}",
        "long nanos = Duration.between(doc['run_at'].value.toInstant(),",
        "doc['last_claimed.claimed_at'].value.toInstant()).toNanos();",
        "if (nanos >= 0) { emit(nanos / 1e9); }",
    )
)


def data_view(oid: str, patterns: list[str], name: str, *, claim_latency: bool = False) -> Obj:
    attributes: Obj = {
        "title": ",".join(patterns),
        "name": name,
        "timeFieldName": TIME_FIELD,
        "fields": "[]",  # Kibana 8 reads the fields from the cluster
    }
    if claim_latency:
        # Kibana sends a data view's runtime fields with every search on it, so only this data view carries
        # the script: on a cluster without Painless the other objects keep working.
        runtime = {LATENCY: {"type": "double", "script": {"source": LATENCY_SCRIPT}}}
        attributes["runtimeFieldMap"] = _compact(runtime)
        attributes["fieldFormatMap"] = _compact({LATENCY: {"id": "number", "params": {"pattern": "0,0.[000]"}}})
    return _saved("index-pattern", oid, attributes, [])


TASKS_DV = f"{PREFIX}-data-view-tasks"
ARCHIVE_DV = f"{PREFIX}-data-view-archive"
ALL_DV = f"{PREFIX}-data-view-all-tasks"
CLAIMS_DV = f"{PREFIX}-data-view-claims"


# Saved searches (Discover)


def saved_search(oid: str, title: str, description: str, dv: str, query: str, columns: list[str]) -> Obj:
    index_ref = "kibanaSavedObjectMeta.searchSourceJSON.index"
    source = {"query": {"query": query, "language": "lucene"}, "filter": [], "indexRefName": index_ref}
    return _saved(
        "search",
        oid,
        {
            "title": title,
            "description": description,
            "columns": columns,
            "sort": [[TIME_FIELD, "desc"]],
            "kibanaSavedObjectMeta": {"searchSourceJSON": _compact(source)},
        },
        [{"type": "index-pattern", "id": dv, "name": index_ref}],
    )


# Lens visualizations: one layer ("layer1") each.


def date_histogram(field: str, label: str) -> Obj:
    return {
        "label": label,
        "dataType": "date",
        "operationType": "date_histogram",
        "sourceField": field,
        "isBucketed": True,
        "scale": "interval",
        "params": {"interval": "auto"},
    }


def top_values(field: str, size: int, order_by: str, label: str) -> Obj:
    return {
        "label": label,
        "dataType": "string",
        "operationType": "terms",
        "sourceField": field,
        "isBucketed": True,
        "scale": "ordinal",
        "params": {
            "size": size,
            "orderBy": {"type": "column", "columnId": order_by},
            "orderDirection": "desc",
            "otherBucket": True,
            "missingBucket": False,
        },
    }


def count(label: str, lucene: str | None = None) -> Obj:
    column: Obj = {
        "label": label,
        "customLabel": True,
        "dataType": "number",
        "operationType": "count",
        "sourceField": RECORDS,
        "isBucketed": False,
        "scale": "ratio",
    }
    if lucene is not None:
        column["filter"] = {"query": lucene, "language": "lucene"}
    return column


def metric(operation: str, field: str, label: str, percentile: int | None = None) -> Obj:
    column: Obj = {
        "label": label,
        "customLabel": True,
        "dataType": "number",
        "operationType": operation,
        "sourceField": field,
        "isBucketed": False,
        "scale": "ratio",
    }
    if percentile is not None:
        column["params"] = {"percentile": percentile}
    return column


def lens_xy(
    oid: str,
    title: str,
    dv: str,
    series: str,
    columns: dict[str, Obj],
    x: str,
    ys: list[str],
    split: str | None = None,
) -> Obj:
    layer: Obj = {"layerId": "layer1", "layerType": "data", "seriesType": series, "xAccessor": x, "accessors": ys}
    if split is not None:
        layer["splitAccessor"] = split
    state = {
        "datasourceStates": {
            "indexpattern": {"layers": {"layer1": {"columns": columns, "columnOrder": list(columns)}}}
        },
        "visualization": {
            "legend": {"isVisible": True, "position": "right"},
            "valueLabels": "hide",
            "preferredSeriesType": series,
            "layers": [layer],
        },
        "query": {"query": "", "language": "lucene"},
        "filters": [],
    }
    refs = [
        {"type": "index-pattern", "id": dv, "name": "indexpattern-datasource-current-indexpattern"},
        {"type": "index-pattern", "id": dv, "name": "indexpattern-datasource-layer-layer1"},
    ]
    return _saved("lens", oid, {"title": title, "description": "", "visualizationType": "lnsXY", "state": state}, refs)


def _state(state: TaskState) -> str:
    return f"state:{state.value}"


def objects() -> list[Obj]:
    tasks, archive = f"{PREFIX}-tasks", f"{PREFIX}-archive"  # IndexNames.tasks and .archive_alias
    views = [
        data_view(TASKS_DV, [tasks], "Tasques: live tasks"),
        data_view(ARCHIVE_DV, [archive], "Tasques: archived tasks"),
        data_view(ALL_DV, [tasks, archive], "Tasques: all tasks (live and archived)"),
        data_view(CLAIMS_DV, [tasks, archive], "Tasques: all tasks, with claim latency", claim_latency=True),
    ]
    searches = [
        saved_search(
            f"{PREFIX}-search-failed",
            "Tasques: failed tasks (waiting to retry)",
            "Tasks whose last attempt failed and that will be retried at run_at.",
            TASKS_DV,
            _state(TaskState.FAILED),
            ["queue", "kind", "attempted", "retry_times", "run_at", "last_claimed.worker_id"],
        ),
        saved_search(
            f"{PREFIX}-search-dead",
            "Tasques: dead tasks",
            "Tasks that failed their last allowed attempt, live and archived (archived_at is set once archived).",
            ALL_DV,
            _state(TaskState.DEAD),
            ["queue", "kind", "attempted", "last_claimed.worker_id", "last_claimed.result.at", "archived_at"],
        ),
        saved_search(
            f"{PREFIX}-search-claim-expired",
            "Tasques: claims past their processing timeout",
            "Claimed tasks whose worker neither reported nor finished in time; the leader's reaper fails them soon.",
            TASKS_DV,
            f"{_state(TaskState.CLAIMED)} AND last_claimed.times_out_at:<now",
            ["queue", "kind", "last_claimed.worker_id", "last_claimed.claimed_at", "last_claimed.times_out_at"],
        ),
    ]
    lenses = [
        lens_xy(
            f"{PREFIX}-lens-state-over-time",
            "Tasques: tasks by state over time (at their last change)",
            ALL_DV,
            "bar_stacked",
            {
                "when": date_histogram(TIME_FIELD, "Last change"),
                "state": top_values("state", 6, "tasks", "State"),
                "tasks": count("Tasks"),
            },
            "when",
            ["tasks"],
            split="state",
        ),
        lens_xy(
            f"{PREFIX}-lens-by-queue",
            "Tasques: live tasks by queue",
            TASKS_DV,
            "bar_horizontal_stacked",
            {
                "queue": top_values("queue", 20, "tasks", "Queue"),
                "state": top_values("state", 6, "tasks", "State"),
                "tasks": count("Tasks"),
            },
            "queue",
            ["tasks"],
            split="state",
        ),
        lens_xy(
            f"{PREFIX}-lens-failures",
            "Tasques: failed and dead tasks",
            ALL_DV,
            "bar_stacked",
            {
                "when": date_histogram(TIME_FIELD, "Last change"),
                "failed": count("Failed (will retry)", _state(TaskState.FAILED)),
                "dead": count("Dead", _state(TaskState.DEAD)),
            },
            "when",
            ["failed", "dead"],
        ),
        lens_xy(
            f"{PREFIX}-lens-top-kinds",
            "Tasques: top kinds",
            ALL_DV,
            "bar_horizontal_stacked",
            {
                "kind": top_values("kind", 10, "tasks", "Kind"),
                "state": top_values("state", 6, "tasks", "State"),
                "tasks": count("Tasks"),
            },
            "kind",
            ["tasks"],
            split="state",
        ),
        lens_xy(
            f"{PREFIX}-lens-claim-latency",
            "Tasques: time from run_at to claim (seconds)",
            CLAIMS_DV,
            "line",
            {
                "claimed": date_histogram("last_claimed.claimed_at", "Claimed at"),
                "p50": metric("median", LATENCY, "Median"),
                "p95": metric("percentile", LATENCY, "95th percentile", percentile=95),
                "max": metric("max", LATENCY, "Max"),
            },
            "claimed",
            ["p50", "p95", "max"],
        ),
    ]
    return [*views, *searches, *lenses, dashboard(searches, lenses)]


# (object, x, y, w, h) on Kibana's 48-column grid
def dashboard(searches: list[Obj], lenses: list[Obj]) -> Obj:
    by_id = {o["id"]: o for o in [*searches, *lenses]}
    layout = [
        (f"{PREFIX}-lens-state-over-time", 0, 0, 24, 15),
        (f"{PREFIX}-lens-failures", 24, 0, 24, 15),
        (f"{PREFIX}-lens-by-queue", 0, 15, 24, 15),
        (f"{PREFIX}-lens-top-kinds", 24, 15, 24, 15),
        (f"{PREFIX}-lens-claim-latency", 0, 30, 48, 12),
        (f"{PREFIX}-search-dead", 0, 42, 24, 15),
        (f"{PREFIX}-search-claim-expired", 24, 42, 24, 15),
        (f"{PREFIX}-search-failed", 0, 57, 48, 15),
    ]
    panels, refs = [], []
    for n, (oid, x, y, w, h) in enumerate(layout, start=1):
        kind = by_id[oid]["type"]
        # Reference names `panel_<panelIndex>`: what Kibana 8.0 looks up by panelRefName, and what 9.x parses
        # the panel id out of.
        panels.append(
            {
                "version": KIBANA_VERSION,
                "type": kind,
                "gridData": {"x": x, "y": y, "w": w, "h": h, "i": str(n)},
                "panelIndex": str(n),
                "embeddableConfig": {"enhancements": {}},
                "panelRefName": f"panel_{n}",
            }
        )
        refs.append({"type": kind, "id": oid, "name": f"panel_{n}"})
    source = {"query": {"query": "", "language": "lucene"}, "filter": []}
    return _saved(
        "dashboard",
        f"{PREFIX}-dashboard",
        {
            "title": "Tasques: overview",
            "description": "What the task server is doing: states over time, queues, failures, kinds, claim latency.",
            "panelsJSON": _compact(panels),
            "optionsJSON": _compact({"useMargins": True, "syncColors": False, "hidePanelTitles": False}),
            "version": 1,
            "timeRestore": True,
            "timeFrom": "now-24h",
            "timeTo": "now",
            "refreshInterval": {"pause": False, "value": 60000},
            "kibanaSavedObjectMeta": {"searchSourceJSON": _compact(source)},
        },
        refs,
    )


def render() -> str:
    return "".join(_compact(o) + "\n" for o in objects())


if __name__ == "__main__":
    OUT.write_text(render())
    sys.stdout.write(f"wrote {OUT}\n")

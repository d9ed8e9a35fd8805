"""The PromQL expressions that monitoring/ ships, the metric names they read, and the names a server exports.

promtool 2.42 has no parser command, so `metric_names` tokenizes: after removing strings, label matchers, range
selectors, grouping clauses and Grafana variables, every identifier that is not a function call, keyword or
number is a metric name. The real Prometheus then evaluates each expression too (test_prometheus_e2e.py), which
catches what this simple reading would miss."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool"}
KEYWORDS |= {"and", "or", "unless", "inf", "nan", "atan2", "start", "end"}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GRAFANA_VAR = re.compile(r"\$\{[^}]*\}|\$\w+")
_BRACES = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w:.])([A-Za-z_:][\w:]*)(\s*\()?")


def metric_names(expr: str) -> set[str]:
    text = _STRING.sub('""', expr)
    text = _GRAFANA_VAR.sub("1", text)
    text = _BRACES.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    names = set()
    for m in _IDENT.finditer(text):
        name, call = m.group(1), m.group(2)
        if call is None and name.lower() not in KEYWORDS:
            names.add(name)
    return names


def rule_exprs(path: Path) -> dict[str, str]:
    """alert (or record) name -> expression of a Prometheus rules file."""
    doc = yaml.safe_load(path.read_text())
    return {rule.get("alert") or rule["record"]: rule["expr"] for group in doc["groups"] for rule in group["rules"]}


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, also those inside collapsed rows."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_exprs(path: Path) -> dict[str, str]:
    """'panel title / refId' (or 'variable NAME') -> PromQL of a Grafana dashboard, variables not substituted."""
    dashboard = json.loads(path.read_text())
    out = {}
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            out[f"{panel['title']} / {target['refId']}"] = target["expr"]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            out[f"variable {var['name']}"] = _label_values_selector(query)
    return out


def _label_values_selector(query: str) -> str:
    """label_values(SELECTOR, label) -> SELECTOR: the part of a variable query that is PromQL."""
    m = re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", query)
    assert m, f"not a label_values(selector, label) query: {query}"
    return m.group(1)


def substitute(expr: str, values: dict[str, str]) -> str:
    """What Grafana sends: `$name` and `${name}` replaced by `values[name]`."""
    return _GRAFANA_VAR.sub(lambda m: values[m.group(0).strip("${}")], expr)


def exported_names(families: dict[str, str]) -> set[str]:
    """The series names that metric families (name -> type, as in `# TYPE`) produce."""
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "summary": ["", "_sum", "_count"]}
    out = set()
    for name, kind in families.items():
        base = name.removesuffix("_total") if kind == "counter" else name
        out |= {base + suffix for suffix in suffixes.get(kind, [""])}
    return out


def parse_types(text: str) -> dict[str, str]:
    """The `# TYPE name kind` lines of a Prometheus text exposition."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[:2] == ["#", "TYPE"]:
            out[parts[2]] = parts[3]
    return out


def scraped(url: str) -> dict[str, str]:
    """The metric families (name -> type) a running server's GET /metrics exports."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as resp:
        return parse_types(resp.read().decode())

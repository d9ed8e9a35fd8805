"""The metric-name reader that the rules and dashboard checks rely on."""

from __future__ import annotations

import pytest

from tests.monitoring.promql import exported_names, metric_names, parse_types, substitute


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("up", {"up"}),
        ('sum by (queue, le) (rate(a_bucket{queue=~"$queue", x="by (b)"}[$__rate_interval]))', {"a_bucket"}),
        ("histogram_quantile(0.99, sum without(instance) (rate(b[5m:1m] offset 1h)))", {"b"}),
        ("x / on(job) group_left(version) y > bool 0.5 or absent(z) unless w and inf > 1e3", {"x", "y", "z", "w"}),
        ('label_replace(m, "dst", "$1", "src", "(.*)") * ignoring(a) n:recorded', {"m", "n:recorded"}),
        ("max_over_time(g[1h]) - g offset 5m", {"g"}),
    ],
)
def test_metric_names(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_substitute_replaces_both_variable_forms() -> None:
    expr = 'rate(a{job=~"$job", queue=~"${queue}"}[$__rate_interval])'
    assert (
        substitute(expr, {"job": ".*", "queue": "q1", "__rate_interval": "1m"}) == 'rate(a{job=~".*", queue=~"q1"}[1m])'
    )


def test_exported_names_from_types() -> None:
    text = "# HELP c_total x\n# TYPE c_total counter\nc_total 1\n# TYPE h histogram\n# TYPE g gauge\ng 1\n"
    assert parse_types(text) == {"c_total": "counter", "h": "histogram", "g": "gauge"}
    assert exported_names(parse_types(text)) == {"c_total", "h_bucket", "h_sum", "h_count", "g"}

"""A real Prometheus scrapes a real `tasques serve` (on each store) every second while a known workload runs: 30 tasks
created in q1, claimed, 20 done, 10 failed with no retries left (dead). Prometheus's HTTP API must then report
exactly those numbers, evaluate every expression of the shipped rules and dashboard without error, show the
rules loaded, and fire the dead-tasks alert. The metric names the expressions read are those the server's
GET /metrics exports."""

from __future__ import annotations

import asyncio
import json
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.monitoring.prometheus import DASHBOARD, RULES, Prometheus
from tests.monitoring.promql import dashboard_exprs, exported_names, metric_names, rule_exprs, scraped, substitute
from tests.process import ServerProcess, delete_es_prefix, es_server_settings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

WORKER = {"X-TASQUES-WORKER-ID": "w1"}
# Grafana's values for the dashboard's variables; the ranges cover the whole test.
VARIABLES = {"job": "tasques", "queue": ".*", "__rate_interval": "1m", "__range": "5m"}
EXPECTED = {
    'sum(tasques_tasks_created_total{queue="q1", source="api"})': 30,
    'sum(tasques_tasks_claimed_total{queue="q1"})': 30,
    'sum(tasques_tasks_finished_total{queue="q1", outcome="done"})': 20,
    'sum(tasques_tasks_finished_total{queue="q1", outcome="dead"})': 10,
    'sum(tasques_task_claim_latency_seconds_count{queue="q1"})': 30,
    'sum(tasques_task_run_duration_seconds_count{queue="q1"})': 30,
    'max without(instance) (tasques_tasks{queue="q1", state="done"})': 20,
    'max without(instance) (tasques_tasks{queue="q1", state="dead"})': 10,
    'max without(instance) (tasques_tasks{queue="q1", state="queued"})': 0,
    'max without(instance) (tasques_tasks{queue="q1", state="claimed"})': 0,
    'max without(instance) (tasques_queue_oldest_task_age_seconds{queue="q1"})': 0,
    "sum(tasques_leader)": 1,
    'sum(tasques_http_requests_total{method="POST", route="/tasques", status_class="2xx"})': 30,
    'sum(tasques_http_requests_total{method="PUT", route="/tasques/done/{queue}/{id}", status_class="2xx"})': 20,
    'sum(tasques_http_requests_total{method="PUT", route="/tasques/failed/{queue}/{id}", status_class="2xx"})': 10,
}
# Dashboard panels and rules that must have data after this workload (the others may be empty: no dispatch,
# no recurring task, no conflict, nothing old).
WITH_DATA = {"Backlog by state / A", "Finished by outcome / A", "Created and claimed / A", "Created and claimed / B"}
WITH_DATA |= {"Claim latency / A", "Request latency by route (p99) / A", "Store operation latency (p99) / A"}
WITH_DATA |= {"Store calls / A", "Leader / A", "Servers leading / A", "Versions / A", "CPU per server / A"}
WITH_DATA |= {"variable job", "variable queue", "TasquesDeadTasks"}
SHIPPED = {**rule_exprs(RULES), **dashboard_exprs(DASHBOARD)}


@dataclass
class Stack:
    server: ServerProcess
    prometheus: Prometheus
    backend: str

    @property
    def expected(self) -> dict[str, float]:
        return {**EXPECTED, f'count(tasques_build_info{{backend="{self.backend}"}} == 1)': 1}


def _call(method: str, url: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    headers = {**WORKER, "Content-Type": "application/json"}
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def _workload(url: str) -> None:
    for _ in range(30):
        _call("POST", f"{url}/tasques", {"queue": "q1", "kind": "k", "retry_times": 0})
    claimed: list[dict[str, Any]] = []
    while len(claimed) < 30:
        claimed += _call("POST", f"{url}/tasques/claims", {"queues": ["q1"], "amount": 30 - len(claimed)})
    for task in claimed[:20]:
        _call("PUT", f"{url}/tasques/done/q1/{task['id']}", {"data": {"ok": True}})
    for task in claimed[20:]:
        _call("PUT", f"{url}/tasques/failed/q1/{task['id']}", {"data": {"error": "boom"}})


@pytest.fixture(scope="module", params=["sqlite", pytest.param("elasticsearch", marks=pytest.mark.elasticsearch)])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp(f"prometheus-e2e-{request.param}")
    es: tuple[str, str] | None = None
    if request.param == "sqlite":
        settings = {"TASQUES_STORE_SQLITE_PATH": str(tmp / "tasques.db")}
    else:
        es = (request.getfixturevalue("elasticsearch_url"), f"t-{uuid.uuid4().hex[:12]}")
        settings = es_server_settings(*es)
    settings["TASQUES_METRICS_GAUGE_CACHE"] = "1s"
    server = ServerProcess(settings, tmp / "server.log")
    prometheus = Prometheus(tmp / "prometheus.log", [f"127.0.0.1:{server.port}"], [RULES])
    try:
        server.start()
        prometheus.start()
        # Scraped at least once before the workload, as a server is in production.
        prometheus.wait_for("the server up", lambda: prometheus.value('up{job="tasques"}'), lambda up: up == 1)
        _workload(server.url)
        yield Stack(server, prometheus, request.param)
    finally:
        prometheus.stop()
        server.stop()
        if es is not None:
            asyncio.run(delete_es_prefix(*es))


def _values(stack: Stack) -> dict[str, float | None]:
    return {expr: stack.prometheus.value(expr) for expr in stack.expected}


@pytest.fixture(scope="module")
def settled(stack: Stack) -> Stack:
    """The stack once Prometheus has scraped the whole workload."""
    stack.prometheus.wait_for("the workload's numbers", lambda: _values(stack), stack.expected.__eq__)
    return stack


def test_prometheus_reports_the_workload(settled: Stack) -> None:
    assert _values(settled) == settled.expected
    assert settled.prometheus.value('sum(tasques_tasks_finished_total{queue="q1", outcome="failed"})') in (None, 0)


def test_every_rule_and_dashboard_expression_evaluates(settled: Stack) -> None:
    def answers() -> dict[str, list[dict[str, Any]]]:
        # An expression Prometheus cannot evaluate raises here.
        return {where: settled.prometheus.query(substitute(expr, VARIABLES)) for where, expr in SHIPPED.items()}

    def empty(got: dict[str, list[dict[str, Any]]]) -> list[str]:
        return sorted(where for where in WITH_DATA if not got[where])

    assert set(SHIPPED) >= WITH_DATA
    # A rate needs two samples of a series in its range: wait for the scrapes after the workload's last call.
    got = settled.prometheus.wait_for("data for every key expression", answers, lambda got: not empty(got))
    assert {sample["metric"]["queue"] for sample in got["variable queue"]} == {"q1"}
    assert [(s["metric"]["queue"], float(s["value"][1])) for s in got["TasquesDeadTasks"]] == [("q1", 10.0)]


def test_rules_are_loaded_and_the_dead_tasks_alert_fires(settled: Stack) -> None:
    stack = settled

    def firing() -> list[dict[str, Any]]:
        alerts = stack.prometheus.api("alerts")["alerts"]
        return [a for a in alerts if a["state"] == "firing"]

    # An alert first fires with the count of the scrape it was evaluated on: one that fell mid-workload saw fewer
    # deaths, and the summary follows at the next evaluations.
    summary = "Queue q1: 10 tasks died in the last 15 minutes"
    got = stack.prometheus.wait_for(
        "TasquesDeadTasks firing for 10 tasks",
        firing,
        lambda got: summary in [a["annotations"]["summary"] for a in got],
    )
    assert [(a["labels"]["alertname"], a["labels"]["queue"]) for a in got] == [("TasquesDeadTasks", "q1")]
    assert got[0]["annotations"]["summary"] == summary
    groups = stack.prometheus.api("rules")["groups"]
    assert [group["name"] for group in groups] == ["tasques"]
    rules = {rule["name"]: rule for rule in groups[0]["rules"]}
    assert set(rules) == set(rule_exprs(RULES))
    assert {rule["health"] for rule in rules.values()} == {"ok"}
    assert rules["TasquesNoLeader"]["state"] != "firing"


@pytest.fixture(scope="module")
def exported(settled: Stack) -> dict[str, str]:
    """The metric families the server exports, after the workload: name -> type."""
    return scraped(settled.server.url)


@pytest.mark.parametrize(("where", "expr"), SHIPPED.items(), ids=list(SHIPPED))
def test_expression_reads_only_what_the_server_exports(exported: dict[str, str], where: str, expr: str) -> None:
    names = metric_names(expr)
    assert names, f"no metric in {expr!r}"
    assert names <= exported_names(exported), sorted(names - exported_names(exported))


def test_the_dashboard_shows_every_tasques_metric(exported: dict[str, str]) -> None:
    read = set().union(*(metric_names(expr) for expr in dashboard_exprs(DASHBOARD).values()))
    # prometheus_client exports a `<name>_created` gauge beside each counter and histogram: a timestamp.
    created = {f"{name.removesuffix('_total')}_created" for name, kind in exported.items() if kind != "gauge"}
    tasques = {name: kind for name, kind in exported.items() if name.startswith("tasques_") and name not in created}
    unshown = sorted(name for name, kind in tasques.items() if not exported_names({name: kind}) & read)
    assert not unshown, unshown

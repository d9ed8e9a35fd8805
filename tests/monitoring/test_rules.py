"""monitoring/prometheus/: the alerting rules pass promtool's checks and its unit tests (tests/monitoring/
alerts.test.yml: each alert silent before its `for:` and firing after), and the example config is valid. That
they read only metrics a server exports, and evaluate on its data: test_prometheus_e2e.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.monitoring.prometheus import REPO, RULES, promtool

UNIT_TESTS = Path(__file__).with_name("alerts.test.yml")
EXAMPLE = REPO / "monitoring" / "prometheus" / "prometheus.example.yml"


def _rules() -> list[dict[str, object]]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_promtool_check_rules() -> None:
    proc = promtool("check", "rules", str(RULES))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in proc.stdout


def test_promtool_unit_tests_pass() -> None:
    proc = promtool("test", "rules", str(UNIT_TESTS))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_every_alert_is_unit_tested_silent_and_firing() -> None:
    """Each alert has an evaluation where it must not fire and one where it must."""
    doc = yaml.safe_load(UNIT_TESTS.read_text())
    silent: set[str] = set()
    firing: set[str] = set()
    for case in doc["tests"]:
        for check in case["alert_rule_test"]:
            (firing if check["exp_alerts"] else silent).add(check["alertname"])
    alerts = {str(rule["alert"]) for rule in _rules()}
    assert firing == alerts
    assert silent == alerts


def test_example_config_is_valid_and_loads_the_rules() -> None:
    proc = promtool("check", "config", str(EXAMPLE))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 1 rule files found" in proc.stdout


@pytest.mark.parametrize("rule", _rules(), ids=lambda rule: str(rule["alert"]))
def test_alert_has_for_severity_and_annotations(rule: dict[str, object]) -> None:
    assert "for" in rule
    labels = rule["labels"]
    assert isinstance(labels, dict)
    assert labels["severity"] in {"warning", "critical"}
    annotations = rule["annotations"]
    assert isinstance(annotations, dict)
    assert set(annotations) == {"summary", "description"}
    assert all(str(text).strip() for text in annotations.values())

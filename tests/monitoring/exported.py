"""The metric families Tasques exports: family name -> type, as `# TYPE` lines give them."""

from __future__ import annotations

import urllib.request

# TODO(r-metrics): switch to the real registry once GET /metrics is on main (`scraped(url)` of a running
# server); until then the names fixed in the brief.
BRIEF_TABLE = {
    "tasques_tasks_created_total": "counter",
    "tasques_tasks_claimed_total": "counter",
    "tasques_tasks_finished_total": "counter",
    "tasques_task_claim_latency_seconds": "histogram",
    "tasques_task_run_duration_seconds": "histogram",
    "tasques_tasks": "gauge",
    "tasques_queue_oldest_task_age_seconds": "gauge",
    "tasques_claim_conflicts_total": "counter",
    "tasques_claims_expired_total": "counter",
    "tasques_recurring_runs_total": "counter",
    "tasques_leader": "gauge",
    "tasques_leader_changes_total": "counter",
    "tasques_http_requests_total": "counter",
    "tasques_http_request_duration_seconds": "histogram",
    "tasques_http_target_dispatches_total": "counter",
    "tasques_http_target_dispatch_duration_seconds": "histogram",
    "tasques_store_operation_duration_seconds": "histogram",
    "tasques_store_errors_total": "counter",
    "tasques_build_info": "gauge",
    # prometheus_client's process collector
    "process_cpu_seconds_total": "counter",
    "process_resident_memory_bytes": "gauge",
}


def parse_types(text: str) -> dict[str, str]:
    """The `# TYPE name kind` lines of a Prometheus text exposition."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[:2] == ["#", "TYPE"]:
            out[parts[2]] = parts[3]
    return out


def scraped(url: str) -> dict[str, str]:
    """The families a running server's GET /metrics exports."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as resp:
        return parse_types(resp.read().decode())

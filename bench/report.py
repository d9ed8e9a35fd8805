"""Markdown tables of a results file: `python -m bench.report [bench/results/latest.json]`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bench.env import Json

STORE_NAMES = {"sqlite": "SQLite", "elasticsearch": "Elasticsearch"}


def _num(value: Any, digits: int = 0) -> str:
    if value is None or isinstance(value, str):
        return "-"
    return f"{value:,.{digits}f}"


def _other_load(entry: Json) -> str:
    cpu = entry.get("cpu") or {}
    capacity = cpu.get("machine_capacity_s") or 0
    return f"{100 * cpu.get('others_s', 0) / capacity:.0f}%" if capacity else "-"


def _get(results: Json, kind: str, *path: str) -> Any:
    node: Any = results.get("stores", {}).get(kind, {})
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    if not rows or all(all(cell in ("-", "not run") for cell in row[1:]) for row in rows):
        return ["(not run)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _cpu_ms(entry: Json) -> str:
    """CPU ms per task of everything but the driver, total and by group (server, workers, broker or database)."""
    cpu_s = (entry.get("cpu") or {}).get("cpu_s") or {}
    tasks = entry.get("tasks") or 0
    groups = {k: v * 1000 / tasks for k, v in cpu_s.items() if k != "driver"} if tasks else {}
    if not groups:
        return "-"
    parts = ", ".join(f"{k} {v:.2f}" for k, v in groups.items())
    return f"{sum(groups.values()):.2f} ({parts})"


def _peers(results: Json, kinds: list[str], names: list[str]) -> list[str]:
    peers = {n: p for n, p in (results.get("peers") or {}).items() if isinstance(p, dict)}
    if not peers:
        return []
    ours = {k: n for k, n in zip(kinds, names, strict=True) if _get(results, k, "e2e", "runs")}
    out = [
        "",
        "**Peers**: the end-to-end workload on other task queues, 2 worker processes each; tasks/s until the last "
        "handler returned; CPU ms per task (by group); other load; our end-to-end rate ÷ theirs by claim amount",
        "",
    ]
    rows = []
    for kind, name in ours.items():
        for r in _get(results, kind, "e2e", "runs"):
            row = [f"Tasques + {name}, claim amount {r['claim_amount']}", f"**{_num(r['tasks_per_s'])}**", _cpu_ms(r)]
            rows.append([*row, _other_load(r), *("" for _ in ours)])
    ratios = (results.get("comparison") or {}).get("peers") or {}
    for peer_name, peer in peers.items():
        if "tasks_per_s" not in peer:
            rows.append([peer_name, "FAILED", "-", "-", *("-" for _ in ours)])
            continue
        row = [peer["label"], f"**{_num(peer['tasks_per_s'])}**", _cpu_ms(peer), _other_load(peer)]
        for kind in ours:
            by_amount = ratios.get(peer_name, {}).get(kind, {})
            row.append(" / ".join(f"{v:.2g}x" for v in by_amount.values()) or "-")
        rows.append(row)
    amounts = sorted({r["claim_amount"] for kind in ours for r in _get(results, kind, "e2e", "runs")})
    claims = "claim " + " / ".join(str(a) for a in amounts)
    return out + _table(
        ["queue", "tasks/s", "CPU ms per task", "other load", *(f"{n} ÷ it ({claims})" for n in ours.values())], rows
    )


def _cost_row(label: str, relayed: Json | None, direct: Json | None, phase: str) -> list[str]:
    """Counts from the relayed run, rates and CPU from the direct one (the relayed one if there is none)."""
    timed = (direct or relayed or {}).get(phase) or {}
    counted = ((relayed or {}).get(phase) or {}).get("per_task") or {}
    c = timed.get("per_task") or {}
    requests = counted.get("es_requests") or {}
    by_kind = " / ".join(_num(requests.get(k), 3) for k in ("search", "bulk", "refresh", "get", "index", "other"))
    written = (counted.get("docs_indexed") or 0) + (counted.get("docs_deleted") or 0)
    node_ops = [counted.get("searches"), written, counted.get("refreshes_external"), counted.get("gets")]
    conflicts = (relayed or direct or {}).get("claim_conflicts_per_task") if phase == "claim_done" else None
    return [
        label + ("" if direct else " (relayed)"),
        f"**{_num(timed.get('tasks_per_s'))}**",
        f"{_num(c.get('server_cpu_ms'), 3)} / {_num(c.get('workers_cpu_ms'), 3)} / **{_num(c.get('node_cpu_ms'), 3)}**",
        f"{_num(counted.get('es_requests_total'), 3)} ({by_kind})",
        " / ".join(_num(v, 3) for v in node_ops),
        _num(conflicts, 3),
        _other_load(timed),
    ]


def _costs(results: Json) -> list[str]:
    runs = _get(results, "elasticsearch", "costs", "runs") or []
    if not runs:
        return []
    configs = list(dict.fromkeys((r["servers"], r["claim_amount"]) for r in runs))
    rows: list[list[str]] = []
    for servers, amount in configs:
        same = [r for r in runs if (r["servers"], r["claim_amount"]) == (servers, amount)]
        relayed = next((r for r in same if r["relayed"]), None)
        direct = next((r for r in same if not r["relayed"]), None)
        label = f"{servers} server{'s' if servers > 1 else ''}, claim {amount}"
        if not rows:
            rows.append(_cost_row("bulk enqueue, 1,000 per request, 1 server", relayed, direct, "enqueue"))
        rows.append(_cost_row(label, relayed, direct, "claim_done"))
        if relayed and "archive" in relayed:
            rows.append(_cost_row("archiving the done tasks, 1 server", relayed, None, "archive"))
    return [
        "",
        "**Per-task costs on Elasticsearch**: tasks/s; CPU ms per task (server / workers / node); Elasticsearch "
        "requests per task, from the relays (search / bulk / refresh / get / index / other); node operations "
        "on the store's indices per task (searches / documents written / refreshes / realtime gets); claim "
        "conflicts per task; other load. Claim+done phases unless named.",
        "",
        *_table(["run", "tasks/s", "CPU ms", "ES requests", "node operations", "conflicts", "other load"], rows),
    ]


def markdown(results: Json) -> str:
    kinds = [k for k in ("sqlite", "elasticsearch") if k in results.get("stores", {})]
    names = [STORE_NAMES[k] for k in kinds]
    out: list[str] = []
    m = results.get("machine", {})
    out.append(
        f"Mode **{results.get('mode')}**, {results.get('started_at', '')[:19]}Z, {m.get('cores')} cores "
        f"({m.get('cpu_model')}), {m.get('memory_gib')} GiB, Python {m.get('python')}, SQLite {m.get('sqlite')}, "
        f"Elasticsearch {m.get('elasticsearch') or '-'}, commit {str(m.get('git_commit'))[:10]}"
        f'{" (dirty)" if m.get("git_dirty") else ""}. "Other load": CPU used by processes outside the '
        "benchmark during the measurement, as a share of the machine."
    )

    out += ["", "**Enqueue** (tasks/s; request latency p50 / p99 in ms)", ""]
    rows = []
    for key, label in (
        ("single_1", "`POST /tasques`, 1 client"),
        ("single_16", "`POST /tasques`, 16 clients"),
        ("bulk_1000", "`POST /tasques/bulk`, 1,000 per request"),
    ):
        row = [label]
        for kind in kinds:
            e = _get(results, kind, "enqueue", key)
            if not e or "tasks_per_s" not in e:
                row.append("-")
                continue
            lat = e["request_latency"]
            row.append(f"{_num(e['tasks_per_s'])} ({_num(lat['p50_ms'], 1)} / {_num(lat['p99_ms'], 1)})")
        rows.append(row)
    out += _table(["scenario", *names], rows)

    out += ["", "**End to end**: tasks/s until every task is done; mean claim size; other load", ""]
    amounts: list[int] = []
    for kind in kinds:
        for r in _get(results, kind, "e2e", "runs") or []:
            if r["claim_amount"] not in amounts:
                amounts.append(r["claim_amount"])
    rows = []
    for amount in amounts:
        row = [f"claim amount {amount}"]
        for kind in kinds:
            runs = [r for r in _get(results, kind, "e2e", "runs") or [] if r["claim_amount"] == amount]
            if not runs:
                row.append("-")
                continue
            r = runs[0]
            row.append(f"**{_num(r['tasks_per_s'])}** (claim {r['mean_claim_size']}; {_other_load(r)})")
        rows.append(row)
    singles = [_get(results, kind, "e2e", "single_calls") for kind in kinds]
    if any(singles):
        row = ["claim amount 1, one HTTP call per done (as the Go worker); server CPU ms per task"]
        for r in singles:
            row.append(
                f"**{_num(r['tasks_per_s'])}** ({r['server_cpu_ms_per_task']} ms; {_other_load(r)})" if r else "-"
            )
        rows.append(row)
    out += _table(["workers: 8 claim loops", *names], rows)

    out += _peers(results, kinds, names)

    out += ["", "**Limits** (tasks/s, no server) and our end-to-end rate as a share of each", ""]
    rows = []
    comparison = results.get("comparison", {})
    for kind, name, label in (
        ("sqlite", "raw_sqlite", "raw SQLite: insert + 2 updates, batched"),
        ("elasticsearch", "raw_es_bulk", "raw Elasticsearch `_bulk`: 3 writes per task"),
        ("elasticsearch", "raw_es_loop", "raw Elasticsearch loop: refresh, search 100, bulk claim, bulk done"),
    ):
        limit = _get(results, kind, "limits", name)
        if not limit or "tasks_per_s" not in limit:
            continue
        shares = comparison.get(kind, {}).get(name, {})
        share = ", ".join(f"{k.split('_')[2]}: {v:g}%" for k, v in shares.items()) or "-"
        rows.append([label, f"**{_num(limit['tasks_per_s'])}**", share])
    out += _table(["limit", "tasks/s", "end to end as % of it, by claim amount"], rows)

    out += ["", "**Pickup latency**, create sent → claim received (ms)", ""]
    rows = []
    for kind, name in zip(kinds, names, strict=True):
        lat = _get(results, kind, "latency")
        if not lat or "create_to_claim" not in lat:
            continue
        d = lat["create_to_claim"]
        rows.append(
            [name, f"{lat['tasks']} at {lat['rate_per_s']:g}/s"]
            + [_num(d[k], 1) for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")]
        )
    out += _table(["store", "tasks", "p50", "p95", "p99", "max"], rows)

    out += [
        "",
        "**Backlog scaling**: claim+done/s with N tasks queued (ms per task; server CPU ms per task; other load)",
        "",
    ]
    sizes: list[int] = []
    for kind in kinds:
        for s in _get(results, kind, "backlog", "steps") or []:
            if s["backlog"] not in sizes:
                sizes.append(s["backlog"])
    rows = []
    for size in sorted(sizes):
        row = [f"{size:,}"]
        for kind in kinds:
            steps = [s for s in _get(results, kind, "backlog", "steps") or [] if s["backlog"] == size]
            if not steps:
                row.append("not run")
                continue
            s = steps[0]
            row.append(
                f"**{_num(s['tasks_per_s'])}** ({_num(s['ms_per_task'], 2)}; "
                f"{_num(s.get('server_cpu_ms_per_task'), 2)}; {_other_load(s)})"
            )
        rows.append(row)
    ratio_row = ["cost at the largest ÷ at the smallest"]
    for kind in kinds:
        b = _get(results, kind, "backlog") or {}
        ratio = b.get("cost_ratio_largest_vs_smallest")
        cpu_ratio = b.get("server_cpu_ratio_largest_vs_smallest")
        ratio_row.append(
            f"**{ratio}x** time, {cpu_ratio}x server CPU (at {b.get('largest_backlog', 0):,})" if ratio else "-"
        )
    rows.append(ratio_row)
    out += _table(["backlog", *names], rows)
    for kind, name in zip(kinds, names, strict=True):
        for skipped in _get(results, kind, "backlog", "skipped") or []:
            out.append(f"\n{name} backlog {skipped['backlog']:,} not run: {skipped['reason']}.")

    out += [
        "",
        "**Idle cost**: server CPU (% of a core); Elasticsearch requests/s (claims and dispatch + housekeeping)",
        "",
    ]
    rows = []
    for kind, name in zip(kinds, names, strict=True):
        idle = _get(results, kind, "idle")
        if not idle or "parked" not in idle:
            continue
        for phase, label in (("parked", "parked"), ("sdk_churn", "re-claiming")):
            ph = idle[phase]
            es = "-"
            if "es_requests_per_s" in ph:
                es = (
                    f"**{_num(ph['es_requests_per_s'], 2)}** ({_num(ph['es_claim_dispatch_requests_per_s'], 2)} + "
                    f"{_num(ph['es_housekeeping_requests_per_s'], 2)})"
                )
            rows.append(
                [name, f"{idle['claims']} claims {label} ({ph['block_for_s']:g}s), {idle['http_queues']} HTTP queues",
                 f"**{_num(ph['server_cpu_pct'], 2)}%**", es]
            )  # fmt: skip
    out += _table(["store", "load", "server CPU", "ES requests/s"], rows)

    rows = []
    for kind, name in zip(kinds, names, strict=True):
        obs = _get(results, kind, "observability")
        if not obs or "loss_pct" not in obs:
            continue
        rows.append(
            [name, f"{_num(obs['median_off'])}", f"{_num(obs['median_on'])}",
             f"**{obs['loss_pct']}%** ({'met' if obs['met'] else 'missed'}; target {obs['target_loss_pct']}%)",
             f"{_num(obs['median_on_sampled_all'])} ({obs['loss_sampled_all_pct']}%)"]
        )  # fmt: skip
    if rows:
        out += ["", "**Cost of metrics and APM** (end to end, claim amount 100, medians of alternating runs)", ""]
        out += _table(
            ["store", "both off (tasks/s)", "metrics + APM on (tasks/s)", "throughput lost", "APM sampling all"], rows
        )

    rows = []
    for kind, name in zip(kinds, names, strict=True):
        au = _get(results, kind, "auth")
        if not au or "loss_pct" not in au:
            continue
        rows.append(
            [name, f"{_num(au['median_off'])}", f"{_num(au['median_token'])}",
             f"**{au['loss_pct']}%** ({'met' if au['met'] else 'missed'}; target {au['target_loss_pct']}%)",
             f"{au['median_server_cpu_ms_per_task_off']} / {au['median_server_cpu_ms_per_task_token']}"]
        )  # fmt: skip
    if rows:
        out += [
            "",
            "**Cost of auth** (end to end, claim amount 100, a token on every request, medians of alternating runs)",
            "",
        ]
        out += _table(
            ["store", "auth off (tasks/s)", "token (tasks/s)", "throughput lost", "server CPU ms/task off / token"],
            rows,
        )

    rows = []
    for kind, name in zip(kinds, names, strict=True):
        fo = _get(results, kind, "fanout")
        if not fo or "done_to_join_claim_ms" not in fo:
            continue
        rows.append(
            [name, f"{_num(fo['fanout_tasks'])}", f"{fo['done_to_join_claim_ms']}", f"{fo['answer_to_join_claim_ms']}",
             f"{fo['baseline_create_to_claim_ms']}", f"{fo['join_vs_baseline']}x"]
        )  # fmt: skip
    if rows:
        out += [
            "",
            "**Fan-out and join** (medians of rounds; the baseline is a plain create reaching a parked claim)",
            "",
        ]
        out += _table(
            ["store", "fan-out tasks", "last done sent → join claimed (ms)", "last done answered → join claimed (ms)",
             "baseline (ms)", "join / baseline"],
            rows,
        )  # fmt: skip

    out += _costs(results)

    failures = results.get("failures") or []
    if failures:
        out += ["", "**FAILED**:", *[f"- {f}" for f in failures]]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else Path(__file__).parent / "results" / "latest.json"
    print(markdown(json.loads(path.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())

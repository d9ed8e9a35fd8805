"""Scenario 7, the cost of being watched: end-to-end runs with metrics and APM on against both off.

The end-to-end workload at claim amount `observability_claim_amount`, with everything off (`metrics.enabled:
false`, `apm.enabled: false`), with metrics on and APM on at its default sample rate (`on`), and the same with
every transaction sampled (`on_sampled_all`, `apm.transaction_sample_rate: 1.0`), APM sending to an intake
stand-in on 127.0.0.1 (`tests/system/apm_intake.py`: the real agent, a fake server). The modes take turns, in
an order reversed every round, so a drift of the machine's load hits them alike; the medians are compared.
The target (issue 14): `on` loses at most 5% of the throughput of `off`.
"""

from __future__ import annotations

import statistics

from bench.context import Context
from bench.env import Json, check
from bench.scenarios.end_to_end import run_one
from tests.system.apm_intake import running_intake

OFF = {"TASQUES_METRICS_ENABLED": "false", "TASQUES_APM_ENABLED": "false"}
TARGET_LOSS_PCT = 5.0


def _on(intake_url: str) -> dict[str, str]:
    return {"TASQUES_METRICS_ENABLED": "true", "TASQUES_APM_ENABLED": "true", "TASQUES_APM_SERVER_URL": intake_url}


async def run(ctx: Context, kind: str) -> Json:
    p = ctx.params
    amount = p.observability_claim_amount
    rates: dict[str, list[float]] = {"off": [], "on": [], "on_sampled_all": []}
    async with running_intake() as intake:
        modes = {
            "off": OFF,
            "on": _on(intake.url),
            "on_sampled_all": {**_on(intake.url), "TASQUES_APM_TRANSACTION_SAMPLE_RATE": "1.0"},
        }
        for round_ in range(p.observability_rounds):
            names = list(modes) if round_ % 2 == 0 else list(reversed(modes))
            for mode in names:
                out = await run_one(
                    ctx, kind, amount, settings=modes[mode], tag=f"obs{round_}{mode}", tasks=p.observability_tasks
                )
                rates[mode].append(out["tasks_per_s"])
        transactions = len(intake.of("transaction"))
        spans = len(intake.of("span"))
    check(transactions > 0 and spans > 0, f"APM was on but the intake got {transactions} transactions, {spans} spans")
    off, on = statistics.median(rates["off"]), statistics.median(rates["on"])
    all_sampled = statistics.median(rates["on_sampled_all"])
    loss = round(100 * (1 - on / off), 2)
    loss_all = round(100 * (1 - all_sampled / off), 2)
    ctx.log(f"observability cost at claim {amount}: off {off:.0f}/s, on {on:.0f}/s ({loss}%), all sampled {loss_all}%")
    return {
        "claim_amount": amount,
        "tasks_per_run": p.observability_tasks,
        "off_tasks_per_s": rates["off"],
        "on_tasks_per_s": rates["on"],
        "on_sampled_all_tasks_per_s": rates["on_sampled_all"],
        "median_off": off,
        "median_on": on,
        "loss_pct": loss,
        "median_on_sampled_all": all_sampled,
        "loss_sampled_all_pct": loss_all,
        "target_loss_pct": TARGET_LOSS_PCT,
        "met": loss <= TARGET_LOSS_PCT,
        "apm_transactions_received": transactions,
        "apm_spans_received": spans,
    }

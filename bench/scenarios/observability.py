"""Scenario 7, the cost of being watched: end-to-end runs with metrics and APM on against both off.

The end-to-end workload at claim amount `observability_claim_amount`, alternately with everything off
(`metrics.enabled: false`, `apm.enabled: false`) and with metrics on and APM on at its default sample rate,
sending to an APM intake stand-in on 127.0.0.1 (`tests/system/apm_intake.py`: the real agent, a fake server).
Runs go off, on, on, off, ... so a drift of the machine's load hits both sides alike; the medians are compared.
The target (issue 14): with both on, throughput loses at most 5%.
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
    rates: dict[str, list[float]] = {"off": [], "on": []}
    async with running_intake() as intake:
        order = ["off", "on", "on", "off"] * ((p.observability_pairs + 1) // 2)
        for i, mode in enumerate(order[: 2 * p.observability_pairs]):
            settings = OFF if mode == "off" else _on(intake.url)
            out = await run_one(ctx, kind, amount, settings=settings, tag=f"obs{mode}{i}")
            rates[mode].append(out["tasks_per_s"])
        transactions = len(intake.of("transaction"))
        spans = len(intake.of("span"))
    check(transactions > 0 and spans > 0, f"APM was on but the intake got {transactions} transactions, {spans} spans")
    off, on = statistics.median(rates["off"]), statistics.median(rates["on"])
    loss = round(100 * (1 - on / off), 2)
    ctx.log(f"observability cost at claim {amount}: off {off:.0f}/s, on {on:.0f}/s, loss {loss}%")
    return {
        "claim_amount": amount,
        "tasks_per_run": p.e2e_tasks,
        "off_tasks_per_s": rates["off"],
        "on_tasks_per_s": rates["on"],
        "median_off": off,
        "median_on": on,
        "loss_pct": loss,
        "target_loss_pct": TARGET_LOSS_PCT,
        "met": loss <= TARGET_LOSS_PCT,
        "apm_transactions_received": transactions,
        "apm_spans_received": spans,
    }

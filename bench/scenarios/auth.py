"""Scenario 9, the cost of authentication: end-to-end runs with a token on every request against auth off.

The end-to-end workload at claim amount `auth_claim_amount`, with auth off (as every other scenario runs) and
with auth on (`token`: `TASQUES_AUTH_ENABLED=true` and a random admin token). In `token` mode the admin token
creates a project (no quota) and issues a producer and a worker token: the bulk enqueue and the read-back
checks send the producer token, every SDK worker the worker token. A token mode run fails if the server
answered any request 4xx (so every request carried a valid token, and none hit the rate limit: the SDK would
retry a 429 silently) or a worker retried a call. The modes take turns, in an order reversed every round; the
medians are compared. The target (issue 16): `token` loses at most 5% of the throughput of `off`.
"""

from __future__ import annotations

import secrets
import statistics

from bench.context import Context
from bench.env import Json
from bench.scenarios.end_to_end import run_one

TARGET_LOSS_PCT = 5.0
MODES = ("off", "token")


def token_settings(admin_token: str) -> dict[str, str]:
    """Auth on with `admin_token`, and the rate limit at its defaults (1000/s per token, burst 2000)."""
    return {"TASQUES_AUTH_ENABLED": "true", "TASQUES_AUTH_ADMIN_TOKEN": admin_token}


async def run(ctx: Context, kind: str) -> Json:
    p = ctx.params
    amount = p.auth_claim_amount
    rates: dict[str, list[float]] = {mode: [] for mode in MODES}
    server_cpu: dict[str, list[float]] = {mode: [] for mode in MODES}
    runs: dict[str, list[Json]] = {mode: [] for mode in MODES}
    for round_ in range(p.auth_rounds):
        for mode in MODES if round_ % 2 == 0 else tuple(reversed(MODES)):
            admin = secrets.token_urlsafe(32) if mode == "token" else None  # 43 characters
            out = await run_one(
                ctx,
                kind,
                amount,
                settings=token_settings(admin) if admin is not None else {"TASQUES_AUTH_ENABLED": "false"},
                tag=f"auth{round_}{mode}",
                tasks=p.auth_tasks,
                admin_token=admin,
            )
            rates[mode].append(out["tasks_per_s"])
            server_cpu[mode].append(out["server_cpu_ms_per_task"])
            runs[mode].append(out)
    off, token = statistics.median(rates["off"]), statistics.median(rates["token"])
    loss = round(100 * (1 - token / off), 2)
    cpu_off, cpu_token = statistics.median(server_cpu["off"]), statistics.median(server_cpu["token"])
    ctx.log(f"auth cost at claim {amount}: off {off:.0f}/s, token {token:.0f}/s ({loss}%)")
    return {
        "claim_amount": amount,
        "tasks_per_run": p.auth_tasks,
        "off_tasks_per_s": rates["off"],
        "token_tasks_per_s": rates["token"],
        "median_off": off,
        "median_token": token,
        "loss_pct": loss,
        # each round's token run against its off run: how far one pair strays is the noise the medians face
        "round_loss_pct": [round(100 * (1 - t / o), 2) for o, t in zip(rates["off"], rates["token"], strict=True)],
        "target_loss_pct": TARGET_LOSS_PCT,
        "met": loss <= TARGET_LOSS_PCT,
        "off_server_cpu_ms_per_task": server_cpu["off"],
        "token_server_cpu_ms_per_task": server_cpu["token"],
        "median_server_cpu_ms_per_task_off": cpu_off,
        "median_server_cpu_ms_per_task_token": cpu_token,
        "rate_limit": "server defaults: 1000 requests/s per token, burst 2000",
        "runs": runs,  # each end-to-end run in full: CPU by group, other load, claim sizes, the server's answers
    }

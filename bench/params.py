"""How big each scenario is: the full run, and the quick one (about ten times smaller) for development."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from bench.env import Json


@dataclass(frozen=True)
class Params:
    mode: str
    # 1. enqueue
    enqueue_single_1: int = 4_000  # POST /tasques from one client
    enqueue_single_16: int = 8_000  # POST /tasques from 16 concurrent clients (shared out evenly)
    enqueue_bulk_batches: int = 40  # POST /tasques/bulk of 1,000 tasks each
    enqueue_warmup: int = 200
    # 2. end to end
    e2e_tasks: int = 20_000
    e2e_claim_amounts: tuple[int, ...] = (1, 10, 100)
    worker_processes: int = 2
    workers_per_process: int = 4  # claim loops per process: 8 claimers in all
    # 3. pickup latency
    latency_tasks: int = 200
    latency_rate: float = 20.0  # tasks per second
    # 4. backlog scaling
    backlog_sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000)
    backlog_measured: int = 5_000  # claim+done counted at each backlog
    backlog_claim_amount: int = 10
    es_backlog_budget_s: float = 480.0  # seconds of Elasticsearch backlog loading the run may spend
    # 6. idle cost
    idle_claims: int = 100  # long-polling claims, each on its own empty queue
    idle_http_queues: int = 100  # registered HTTP queues, all empty
    idle_seconds: float = 20.0  # measured per phase
    # 7. observability cost: off/on pairs of end-to-end runs
    observability_claim_amount: int = 100
    observability_tasks: int = 60_000  # per run: longer than the e2e runs, so one noisy second weighs less
    observability_rounds: int = 3  # each runs every mode once
    # 9. authentication cost: off/token pairs of end-to-end runs, as in 7
    auth_claim_amount: int = 100
    auth_tasks: int = 60_000  # per run
    auth_rounds: int = 3  # each runs both modes once
    # 10. fan-out and join (issue 17): tasks the join depends on, claimed and finished this many at a time
    fanout_tasks: int = 10_000
    fanout_claim_amount: int = 1_000
    fanout_rounds: int = 3  # each on fresh queues; medians reported
    # 8. per-task costs on Elasticsearch (docs/scaling.md)
    costs_tasks: int = 20_000  # per run
    costs_servers: tuple[int, ...] = (1, 2, 4)
    costs_claim_amounts: tuple[int, ...] = (10, 100)
    costs_direct_servers: tuple[int, ...] = (1, 2)  # these run again without the counting relays (rates, CPU)
    # 5. limits
    raw_sqlite_tasks: int = 100_000
    raw_es_bulk_tasks: int = 50_000
    raw_es_loop_tasks: int = 20_000
    # a run without progress for this long has lost tasks (or the server is stuck)
    stall_timeout_s: float = 60.0

    def to_json(self) -> Json:
        return asdict(self)


FULL = Params(mode="full")
QUICK = Params(
    mode="quick",
    enqueue_single_1=400,
    enqueue_single_16=800,
    enqueue_bulk_batches=4,
    enqueue_warmup=50,
    e2e_tasks=2_000,
    latency_tasks=20,
    backlog_sizes=(1_000, 10_000, 100_000),
    backlog_measured=500,
    es_backlog_budget_s=120.0,
    raw_sqlite_tasks=10_000,
    observability_tasks=6_000,
    auth_tasks=6_000,
    fanout_tasks=1_000,
    fanout_rounds=1,
    costs_tasks=2_000,
    raw_es_bulk_tasks=5_000,
    raw_es_loop_tasks=2_000,
    stall_timeout_s=30.0,
    idle_seconds=6.0,
)

"""Typed configuration: `config.yaml`, then `TASQUES_*` environment overrides (underscores for nesting)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from tasques.domain.duration import Duration

ENV_PREFIX = "TASQUES_"
log = logging.getLogger(__name__)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BasicAuthUser(_Section):
    name: str
    password: str


class ServerConfig(_Section):
    """The HTTP server."""

    bind_address: str = Field("127.0.0.1:8080", description="host:port to listen on")
    basic_auth: list[BasicAuthUser] = Field(
        default_factory=list, description="when non-empty, every API route needs HTTP basic auth"
    )
    shutdown_grace: Duration = Field(timedelta(seconds=10), description="how long to drain requests on stop")
    access_log: bool = Field(False, description="log every request (costs throughput on busy servers)")


class SqliteConfig(_Section):
    """The embedded store: one file, one server process."""

    path: str = Field("./tasques.db", description="database file; created if missing")
    busy_timeout: Duration = Field(
        timedelta(seconds=10),
        gt=timedelta(0),
        description="the store deadline: how long a write waits for a lock held by another process (then 503)",
    )


class ElasticsearchConfig(_Section):
    """The store for scale: any number of stateless servers share one cluster."""

    addresses: list[str] = Field(default_factory=lambda: ["http://127.0.0.1:9200"], description="cluster URLs")
    user: str | None = Field(None, description="basic-auth user")
    password: str | None = Field(None, description="basic-auth password")
    api_key: str | None = Field(None, description="API key (instead of user/password)")
    ca_certs: str | None = Field(None, description="PEM file of the CA that signed the cluster's certificate")
    index_prefix: str = Field("tasques", description="prefix of every index, alias and template Tasques owns")
    replicas: int = Field(1, ge=0, description="replica count of the indices Tasques creates")
    shards: int = Field(1, ge=1, description="primary shard count of the live tasks index")
    refresh_interval: Duration = Field(
        timedelta(seconds=1),
        gt=timedelta(0),
        description="index refresh interval: how soon other servers' writes become claimable",
    )
    claim_overfetch: int = Field(
        3, ge=1, description="a claim searches amount x this many candidates, so lost races still fill it"
    )
    request_timeout: Duration = Field(
        timedelta(seconds=10),
        gt=timedelta(0),
        description="the store deadline: one Elasticsearch request that takes longer answers 503 (never retried)",
    )
    max_retries: int = Field(
        0,
        ge=0,
        le=10,
        description="transport retries after a connection error (another node of `addresses` is tried); "
        "each may take request_timeout again",
    )
    archive_rollover_max_age: Duration = Field(
        timedelta(hours=24), description="roll the archive index over at this age"
    )
    archive_rollover_max_docs: int = Field(10_000_000, ge=1, description="or at this many documents")
    archive_retention: Duration = Field(
        timedelta(days=30), description="archive indices are deleted this long after they roll over"
    )
    ilm_policy: str | None = Field(
        None, description="name of an existing ILM policy to use for the archive instead of Tasques' own"
    )


class StoreConfig(_Section):
    """Where tasks live."""

    kind: Literal["sqlite", "elasticsearch"] = Field("sqlite", description="sqlite (embedded) or elasticsearch")
    ping_timeout: Duration = Field(
        timedelta(seconds=2), gt=timedelta(0), description="GET /ready answers 503 if the store takes longer"
    )
    sqlite: SqliteConfig = SqliteConfig()
    elasticsearch: ElasticsearchConfig = ElasticsearchConfig()


class BackoffConfig(_Section):
    """Retry delay after the n-th failed attempt: min(max, initial * multiplier ** (n - 1))."""

    initial: Duration = Field(timedelta(seconds=1), description="delay after the first failed attempt")
    multiplier: float = Field(2.0, ge=1.0, description="growth of the delay per further attempt")
    max: Duration = Field(timedelta(hours=1), description="the delay never exceeds this")


class TasksConfig(_Section):
    """Task defaults and claim limits."""

    retry_times: int = Field(25, ge=0, description="default retries for a task that names none")
    processing_timeout: Duration = Field(
        timedelta(minutes=30), gt=timedelta(0), description="default processing timeout"
    )
    block_for: Duration = Field(timedelta(seconds=3), description="default wait of a claim that finds nothing")
    max_block_for: Duration = Field(timedelta(seconds=60), description="longest wait a claim may ask for")
    max_claim_amount: int = Field(1000, ge=1, description="most tasks one claim may ask for")
    claim_poll_interval: Duration = Field(
        timedelta(milliseconds=250),
        description="how often a blocked claim re-checks the store (tasks created on this server wake it at once)",
    )
    backoff: BackoffConfig = BackoffConfig()


class LeaderConfig(_Section):
    """The leader lock: one server at a time runs the housekeeping."""

    lease: Duration = Field(timedelta(seconds=5), description="how long a leader lock lasts unrenewed")
    renew_every: Duration = Field(timedelta(seconds=1), description="how often the leader renews its lock")


class HousekeepingConfig(_Section):
    """Leader-only jobs: timeout reaping, recurring enqueueing, archiving."""

    reap_every: Duration = Field(timedelta(seconds=1), description="how often timed-out claims are reaped")
    recurring_every: Duration = Field(timedelta(seconds=1), description="how often recurring slots are checked")
    archive_every: Duration = Field(timedelta(minutes=1), description="how often finished tasks are archived")
    archive_older_than: Duration = Field(timedelta(hours=24), description="age of done/dead tasks to archive")
    batch_size: int = Field(500, ge=1, description="most tasks one housekeeping pass touches per batch")
    timeline_retention: Duration = Field(
        timedelta(hours=72), description="how long the attempts of HTTP-target tasks stay in their timeline"
    )


class DispatchConfig(_Section):
    """The HTTP-target dispatcher every server runs. Its limits are per server, not per cluster."""

    enabled: bool = Field(True, description="run the dispatcher on this server")
    poll_interval: Duration = Field(timedelta(milliseconds=250), description="how often queues are checked")
    max_concurrent_dispatches: int = Field(
        10, ge=1, description="requests in flight per queue on this server, unless the queue sets its own"
    )


class Config(_Section):
    server: ServerConfig = ServerConfig()
    store: StoreConfig = StoreConfig()
    tasks: TasksConfig = TasksConfig()
    leader: LeaderConfig = LeaderConfig()
    housekeeping: HousekeepingConfig = HousekeepingConfig()
    dispatch: DispatchConfig = DispatchConfig()


class ConfigError(ValueError):
    """The configuration file or an override is invalid."""


def load_config(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read `path` (if given and present), apply `TASQUES_*` overrides from `environ`, validate."""
    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise ConfigError(f"config file {p} does not exist")
        loaded = yaml.safe_load(p.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {p} must hold a mapping at the top level")
        raw = loaded
    env = os.environ if environ is None else environ
    for key, value in sorted(env.items()):
        if key.startswith(ENV_PREFIX) and not key.startswith("TASQUES_TEST_"):
            _apply_override(raw, key, value)
    try:
        return Config.model_validate(raw)
    except ValueError as e:
        raise ConfigError(str(e)) from e


def _apply_override(raw: dict[str, Any], key: str, value: str) -> None:
    tokens = key[len(ENV_PREFIX) :].lower().split("_")
    path = _resolve(Config, tokens)
    if path is None:
        # Other tools share the prefix (the worker, the test harness): warn rather than refuse to start.
        log.warning("ignoring %s: it names no setting", key)
        return
    node = raw
    for name in path[:-1]:
        child = node.get(name)
        if not isinstance(child, dict):
            child = {}
            node[name] = child
        node = child
    node[path[-1]] = yaml.safe_load(value) if value else value


def _resolve(model: type[BaseModel], tokens: list[str]) -> list[str] | None:
    """Match underscore-split tokens to a field path; field names may themselves hold underscores."""
    for k in range(len(tokens), 0, -1):
        name = "_".join(tokens[:k])
        field = model.model_fields.get(name)
        if field is None:
            continue
        rest = tokens[k:]
        if not rest:
            return [name]
        sub = field.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            tail = _resolve(sub, rest)
            if tail is not None:
                return [name, *tail]
    return None


def render_defaults() -> str:
    """`config.yaml` as shipped: every setting at its default, each with its description as a comment."""
    lines = [
        "# Tasques configuration. Every setting is shown at its default.",
        "# Any setting can be overridden by an environment variable: TASQUES_ + the path in upper case,",
        "# joined by underscores, e.g. TASQUES_SERVER_BIND_ADDRESS=0.0.0.0:8080 or TASQUES_STORE_KIND=elasticsearch.",
        "# Values in the environment are read as YAML: lists as [a, b], durations as Go-style strings (30m, 1h30m).",
    ]
    _render(Config(), lines, 0)
    return "\n".join(lines) + "\n"


def _render(section: BaseModel, lines: list[str], depth: int) -> None:
    pad = "  " * depth
    data = section.model_dump(mode="json")
    for name, field in type(section).model_fields.items():
        value = getattr(section, name)
        if isinstance(value, BaseModel):
            lines.append("")
            doc = type(value).__doc__
            if doc:
                lines.append(f"{pad}# {doc.strip().splitlines()[0]}")
            lines.append(f"{pad}{name}:")
            _render(value, lines, depth + 1)
            continue
        if field.description:
            lines.append(f"{pad}# {field.description}")
        rendered = yaml.safe_dump({name: data[name]}, default_flow_style=True, width=1000).strip()
        lines.append(f"{pad}{rendered[1:-1]}")

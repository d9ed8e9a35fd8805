"""Typed configuration: `config.yaml`, then `TASQUES_*` environment overrides (underscores for nesting)."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import logging
import os
import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from tasques.config_env import OverrideError, convert, describe, resolve_field
from tasques.dispatch.policy import parse_host, parse_network
from tasques.domain.duration import MAX_DURATION, Duration, PositiveDuration, format_duration
from tasques.domain.limits import DEFAULT_PROJECT, ProjectName
from tasques.domain.project import Role

ENV_PREFIX = "TASQUES_"
log = logging.getLogger(__name__)

# Zero is meaningful for these (e.g. "do not wait"); negative never is.
NonNegativeDuration = Annotated[Duration, Field(ge=timedelta(0), le=MAX_DURATION)]
# index.max_result_window: no Elasticsearch search may return more hits than this.
ES_MAX_PAGE = 10_000
_HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252})?")


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
    shutdown_grace: PositiveDuration = Field(
        timedelta(seconds=10),
        description="a stop (SIGTERM/SIGINT) ends the process within this, whatever the store does; a second signal ends it at once",
    )
    access_log: bool = Field(False, description="log every request (costs throughput on busy servers)")

    @field_validator("bind_address")
    @classmethod
    def _well_formed(cls, value: str) -> str:
        split_host_port(value)
        return value


class SqliteConfig(_Section):
    """The embedded store: one file, one server process."""

    path: str = Field("./tasques.db", description="database file; created if missing")
    busy_timeout: PositiveDuration = Field(
        timedelta(seconds=10),
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
    replicas: int = Field(1, ge=0, le=100, description="replica count of the indices Tasques creates")
    shards: int = Field(1, ge=1, le=1024, description="primary shard count of the live tasks index")
    refresh_interval: PositiveDuration = Field(
        timedelta(seconds=1), description="index refresh interval: how soon other servers' writes become claimable"
    )
    claim_overfetch: int = Field(
        3, ge=1, le=100, description="a claim searches amount x this many candidates, so lost races still fill it"
    )
    page_size: int = Field(
        1000,
        ge=1,
        le=ES_MAX_PAGE,
        description="hits per search when the server reads every record (queue settings, recurring tasks, ...)",
    )
    request_timeout: PositiveDuration = Field(
        timedelta(seconds=10),
        description="the store deadline: one Elasticsearch request that takes longer answers 503 (never retried)",
    )
    max_retries: int = Field(
        2,
        ge=0,
        le=10,
        description="transport retries after a refused or broken connection, each on another node of `addresses` "
        "(timeouts are never retried); each may take request_timeout again",
    )
    archive_rollover_max_age: PositiveDuration = Field(
        timedelta(hours=24), description="roll the archive index over at this age"
    )
    archive_rollover_max_docs: int = Field(10_000_000, ge=1, le=2_000_000_000, description="or at this many documents")
    archive_retention: PositiveDuration = Field(
        timedelta(days=30), description="archive indices are deleted this long after they roll over"
    )
    ilm_policy: str | None = Field(
        None, description="name of an existing ILM policy to use for the archive instead of Tasques' own"
    )


class StoreConfig(_Section):
    """Where tasks live."""

    kind: Literal["sqlite", "elasticsearch"] = Field("sqlite", description="sqlite (embedded) or elasticsearch")
    ping_timeout: PositiveDuration = Field(
        timedelta(seconds=2), description="GET /ready answers 503 if the store takes longer"
    )
    sqlite: SqliteConfig = SqliteConfig()
    elasticsearch: ElasticsearchConfig = ElasticsearchConfig()


class BackoffConfig(_Section):
    """Retry delay after the n-th failed attempt: min(max, initial * multiplier ** (n - 1))."""

    initial: PositiveDuration = Field(timedelta(seconds=1), description="delay after the first failed attempt")
    multiplier: float = Field(2.0, ge=1.0, le=1000.0, description="growth of the delay per further attempt")
    max: PositiveDuration = Field(timedelta(hours=1), description="the delay never exceeds this")

    @model_validator(mode="after")
    def _ordered(self) -> BackoffConfig:
        if self.initial > self.max:
            raise ValueError("tasks.backoff.initial must not exceed tasks.backoff.max")
        return self


class TasksConfig(_Section):
    """Task defaults and claim limits."""

    retry_times: int = Field(25, ge=0, le=2_147_483_647, description="default retries for a task that names none")
    processing_timeout: PositiveDuration = Field(timedelta(minutes=30), description="default processing timeout")
    block_for: NonNegativeDuration = Field(
        timedelta(seconds=3), description="default wait of a claim that finds nothing"
    )
    max_block_for: NonNegativeDuration = Field(timedelta(seconds=60), description="longest wait a claim may ask for")
    max_claim_amount: int = Field(1000, ge=1, le=ES_MAX_PAGE, description="most tasks one claim may ask for")
    claim_poll_interval: PositiveDuration = Field(
        timedelta(milliseconds=250),
        description="how often one store probe checks the queues of every blocked claim and the dispatcher's idle "
        "queues (on Elasticsearch at most once per refresh_interval; tasks created on this server wake them at once)",
    )
    backoff: BackoffConfig = BackoffConfig()

    @model_validator(mode="after")
    def _ordered(self) -> TasksConfig:
        if self.block_for > self.max_block_for:
            raise ValueError("tasks.block_for must not exceed tasks.max_block_for")
        return self


class LeaderConfig(_Section):
    """The leader lock: one server at a time runs the housekeeping."""

    lease: PositiveDuration = Field(timedelta(seconds=5), description="how long a leader lock lasts unrenewed")
    renew_every: PositiveDuration = Field(
        timedelta(seconds=1), description="how often the leader renews its lock (less than lease)"
    )

    @model_validator(mode="after")
    def _renew_within_the_lease(self) -> LeaderConfig:
        if self.renew_every >= self.lease:
            raise ValueError(
                f"leader.renew_every ({format_duration(self.renew_every)}) must be shorter than "
                f"leader.lease ({format_duration(self.lease)})"
            )
        return self


class HousekeepingConfig(_Section):
    """Leader-only jobs: timeout reaping, recurring enqueueing, archiving."""

    reap_every: PositiveDuration = Field(timedelta(seconds=1), description="how often timed-out claims are reaped")
    recurring_every: PositiveDuration = Field(timedelta(seconds=1), description="how often recurring slots are checked")
    recurring_catch_up: NonNegativeDuration = Field(
        timedelta(minutes=5),
        le=timedelta(days=1),
        description="slots missed by less than this (a late pass, a failover) are each enqueued; after a longer "
        "gap they collapse into the latest one (0s to 24h)",
    )
    recurring_catch_up_max: int = Field(
        100, ge=1, le=10_000, description="most slots of one recurring task enqueued by one catch-up pass"
    )
    archive_every: PositiveDuration = Field(timedelta(minutes=1), description="how often finished tasks are archived")
    archive_older_than: NonNegativeDuration = Field(
        timedelta(hours=24), description="age of done/dead tasks to archive"
    )
    batch_size: int = Field(500, ge=1, le=ES_MAX_PAGE, description="most tasks one housekeeping pass touches per batch")
    batches_every: PositiveDuration = Field(
        timedelta(seconds=30),
        description="how often open batches are checked for completion (a backstop: batches complete when their "
        "last task finishes); each pass checks up to batch_size of them",
    )
    dependencies_every: PositiveDuration = Field(
        timedelta(minutes=1),
        description="how often every waiting task is re-evaluated, repairing a release lost to a crash (finishes "
        "release their dependents at once without it)",
    )
    timeline_retention: PositiveDuration = Field(
        timedelta(hours=72), description="how long the attempts of HTTP-target tasks stay in their timeline"
    )


class WorkersConfig(_Section):
    """The worker registry: what each server knows of the workers that claim and report, and their drain."""

    flush_every: PositiveDuration = Field(
        timedelta(seconds=1), description="how often a server writes the workers it has seen (one store write for all)"
    )
    drain_refresh_every: PositiveDuration = Field(
        timedelta(seconds=1),
        description="how often a server reads which workers are draining: a drain through another server applies "
        "here within this",
    )
    gone_after: PositiveDuration = Field(
        timedelta(minutes=5), description="a worker silent this long is listed as gone"
    )
    forget_after: PositiveDuration = Field(
        timedelta(days=7), description="a worker silent this long is forgotten (the leader deletes its record)"
    )
    forget_every: PositiveDuration = Field(timedelta(hours=1), description="how often the leader forgets workers")

    @model_validator(mode="after")
    def _forgotten_after_gone(self) -> WorkersConfig:
        if self.forget_after < self.gone_after:
            raise ValueError("workers.forget_after must not be shorter than workers.gone_after")
        return self


class DispatchConfig(_Section):
    """The HTTP-target dispatcher every server runs. Its limits are per server, not per cluster."""

    enabled: bool = Field(True, description="run the dispatcher on this server")
    poll_interval: PositiveDuration = Field(
        timedelta(milliseconds=250),
        description="how often queues with work held back by their limits are checked (idle queues are found by "
        "the claim probe, tasks.claim_poll_interval)",
    )
    max_concurrent_dispatches: int = Field(
        10, ge=1, le=10_000, description="requests in flight per queue on this server, unless the queue sets its own"
    )
    allowed_networks: list[str] = Field(
        default_factory=list,
        description="CIDRs HTTP targets may reach although they are not public (loopback, private, link-local, "
        "...), e.g. [10.0.0.0/8]; everything else non-public is refused",
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="host names HTTP targets may reach whatever they resolve to, e.g. [hooks.internal]",
    )
    max_redirects: int = Field(
        5, ge=1, le=20, description="most redirects followed for a task that sets follow_redirects"
    )
    tls_files_dir: str | None = Field(
        None,
        description="directory whose files tasks may name as TLS ca/cert/key; unset: only inline PEM is accepted",
    )

    @field_validator("allowed_networks")
    @classmethod
    def _networks(cls, networks: list[str]) -> list[str]:
        for network in networks:
            parse_network(network)  # PolicyError (a ValueError) names the bad entry
        return networks

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, hosts: list[str]) -> list[str]:
        for host in hosts:
            parse_host(host)
        return hosts

    @field_validator("tls_files_dir")
    @classmethod
    def _absolute_dir(cls, path: str | None) -> str | None:
        if path is not None and not os.path.isabs(path):
            raise ValueError("must be an absolute path")
        return path


class MetricsConfig(_Section):
    """Prometheus metrics at GET /metrics (each server exports its own; see README "Monitoring")."""

    enabled: bool = Field(True, description="serve GET /metrics and record the metrics")
    gauge_cache: PositiveDuration = Field(
        timedelta(seconds=10),
        le=timedelta(hours=1),
        description="the gauges read from the store (tasks by queue and state, oldest queued age) are recomputed "
        "at most this often, so scrapes never add store load",
    )
    max_queues: int = Field(
        1000,
        ge=1,
        le=100_000,
        description="distinct queue label values per metric; tasks of further queues are counted under "
        'queue="_other", so a flood of queue names cannot blow up the series count',
    )


class ApmConfig(_Section):
    """Elastic APM tracing with the official agent; its own ELASTIC_APM_* variables apply too (and win)."""

    enabled: bool = Field(False, description="send transactions and spans to an APM server")
    server_url: str = Field("http://127.0.0.1:8200", description="the APM server (intake) URL")
    secret_token: str | None = Field(None, description="the APM server's secret token")
    api_key: str | None = Field(None, description="an APM API key (instead of the secret token)")
    service_name: str = Field("tasques", description="the service name shown in APM")
    environment: str | None = Field(None, description="the environment shown in APM, e.g. production")
    transaction_sample_rate: float = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description="share of transactions recorded with their spans (0.0 to 1.0); APM Server 8+ scales the "
        "transaction counts up by it. 1.0 costs a busy server several percent of its throughput",
    )
    verify_server_cert: bool = Field(True, description="verify the APM server's TLS certificate")


class LoggingConfig(_Section):
    """Server logs, on standard error."""

    format: Literal["text", "json"] = Field(
        "text", description="text lines, or JSON lines with Elastic Common Schema field names"
    )
    level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description='the least severe level logged (see README "Logging" for what each level holds)'
    )

    @field_validator("format", "level", mode="before")
    @classmethod
    def _any_case(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value


# A bootstrap credential or shared signing secret shorter than this is guessable (HS256 wants 256 bits).
MIN_SECRET_LENGTH = 32


def _long_secret(value: SecretStr | None) -> SecretStr | None:
    if value is not None and len(value.get_secret_value()) < MIN_SECRET_LENGTH:
        raise ValueError(f"must be at least {MIN_SECRET_LENGTH} characters")
    return value


class JwtConfig(_Section):
    """JSON Web Tokens as Bearer credentials: HS256 with a shared secret and/or RS256/ES256 keys of a JWKS file."""

    hs256_secret: SecretStr | None = Field(
        None, description="shared HS256 secret (at least 32 characters) for tokens without a kid"
    )
    jwks_file: str | None = Field(
        None,
        description="JSON Web Key Set file of RS256/ES256 public keys, each with a kid (re-read when it changes); "
        "needs issuer and audience",
    )
    issuer: str | None = Field(None, description="required iss claim; unset: not checked")
    audience: str | None = Field(None, description="required aud claim; unset: not checked")
    leeway: NonNegativeDuration = Field(
        timedelta(seconds=10), le=timedelta(minutes=5), description="clock skew allowed on exp and nbf (0s to 5m)"
    )
    project_claim: str = Field("project", min_length=1, max_length=200, description="claim naming the project")
    role_claim: str = Field("role", min_length=1, max_length=200, description="claim naming the role")
    cache_size: int = Field(
        10_000, ge=1, le=1_000_000, description="verified tokens kept (until their exp) so each is checked once"
    )

    @field_validator("hs256_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        return _long_secret(value)

    @model_validator(mode="after")
    def _jwks_needs_iss_and_aud(self) -> JwtConfig:
        if self.jwks_file is not None and (self.issuer is None or self.audience is None):
            raise ValueError("auth.jwt.jwks_file needs auth.jwt.issuer and auth.jwt.audience")
        return self

    @property
    def configured(self) -> bool:
        return self.hs256_secret is not None or self.jwks_file is not None


class AuthConfig(_Section):
    """Projects and API tokens (see tasques/api/access/README.md). Off: every request is project default, role admin."""

    enabled: bool = Field(
        False, description="require a token, a JWT or basic auth on every route but /health and /ready"
    )
    admin_token: SecretStr | None = Field(
        None, description="bootstrap admin credential (at least 32 characters), sent as a Bearer token"
    )
    token_cache_ttl: NonNegativeDuration = Field(
        timedelta(seconds=2),
        le=timedelta(minutes=1),
        description="how long a server keeps a token record: a revocation takes effect within this (0s to 1m)",
    )
    # Generous by default: one worker fleet often shares a token, and its batched calls are few per task.
    rate_per_second: float = Field(
        1000.0,
        gt=0,
        le=1_000_000,
        description="each token's requests a second on one server (unless its project sets one)",
    )
    burst: int = Field(2000, ge=1, le=1_000_000, description="requests a token may make at once above its rate")
    rate_limit_keys: int = Field(
        100_000, ge=1, le=10_000_000, description="most tokens whose rate one server tracks at once"
    )
    basic_auth_project: ProjectName = Field(DEFAULT_PROJECT, description="project of the users of server.basic_auth")
    basic_auth_role: Role = Field(Role.ADMIN, description="role of the users of server.basic_auth")
    default_max_outstanding_tasks: int | None = Field(
        1000, ge=1, le=2_000_000_000, description="quota of a new project when it names none; null: unlimited"
    )
    metrics_open: bool = Field(
        False, description="serve /metrics without credentials (for a Prometheus that cannot send a token)"
    )
    jwt: JwtConfig = JwtConfig()

    @field_validator("admin_token")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        return _long_secret(value)


class EncryptionKey(_Section):
    id: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$", description="the key id stored with every value it seals")
    # SecretStr: repr, str and model_dump show asterisks, so no log line or dump of the config holds a key.
    key: SecretStr = Field(description="base64 of 32 random bytes, e.g. the output of `openssl rand -base64 32`")

    @field_validator("key")
    @classmethod
    def _thirty_two_bytes(cls, key: SecretStr) -> SecretStr:
        try:
            raw = base64.b64decode(key.get_secret_value().strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("must be base64 of 32 bytes (the value is not valid base64)") from None
        if len(raw) != 32:
            raise ValueError(f"must be base64 of 32 bytes, not {len(raw)}")
        return key

    def material(self) -> bytes:
        return base64.b64decode(self.key.get_secret_value().strip())


class EncryptionConfig(_Section):
    """Encryption at rest (AES-256-GCM): HTTP-target headers, bodies and TLS keys, and sensitive tasks' args."""

    keys: list[EncryptionKey] = Field(
        default_factory=list,
        description="the keyring, as a list of {id, key}; values sealed with any listed key can be read. Empty: "
        "nothing is encrypted, and tasks created with sensitive: true are refused",
    )
    current: str | None = Field(
        None, description="the id of the key new writes use; the last listed when unset (rotate by adding one)"
    )

    @model_validator(mode="after")
    def _known_current(self) -> EncryptionConfig:
        ids = [k.id for k in self.keys]
        if len(set(ids)) != len(ids):
            raise ValueError("encryption.keys: every key id must be listed once")
        if self.current is not None and self.current not in ids:
            raise ValueError(f"encryption.current: {self.current!r} is not the id of a listed key")
        return self


class LocalBackupConfig(_Section):
    """Backups written into a directory (another disk, a mounted volume)."""

    directory: str = Field("./backups", description="where backups go; created if missing")


class ObjectStorageConfig(_Section):
    """Backups uploaded to S3-compatible object storage (AWS S3, MinIO, s3proxy, Ceph, ...)."""

    endpoint: str | None = Field(None, description="the service URL, e.g. https://s3.eu-west-1.amazonaws.com")
    region: str = Field("us-east-1", description="the signing region")
    access_key: str | None = Field(None, description="the access key id")
    secret_key: SecretStr | None = Field(None, description="the secret access key")
    bucket: str | None = Field(None, description="the bucket (it must exist)")
    prefix: str = Field("tasques/", max_length=512, description="key prefix of every backup object")
    verify_tls: bool = Field(True, description="check the endpoint's TLS certificate")
    ca_certs: str | None = Field(None, description="PEM file of the CA that signed the endpoint's certificate")
    path_style: bool = Field(True, description="bucket in the path, not the host name (most self-hosted services)")
    timeout: PositiveDuration = Field(
        timedelta(seconds=30), le=timedelta(hours=1), description="connect and read timeout of each request"
    )


class BackupConfig(_Section):
    """Online backups of the SQLite store, taken by the leader (Elasticsearch uses snapshots: `tasques snapshot`)."""

    enabled: bool = Field(False, description="take a backup every `every` (SQLite store only)")
    method: Literal["local", "object_storage"] = Field("local", description="local (a directory) or object_storage")
    every: PositiveDuration = Field(timedelta(hours=1), ge=timedelta(minutes=1), description="time between backups")
    keep: int = Field(24, ge=1, le=100_000, description="how many backups to keep; older ones are deleted")
    local: LocalBackupConfig = LocalBackupConfig()
    object_storage: ObjectStorageConfig = ObjectStorageConfig()

    @model_validator(mode="after")
    def _storage_named(self) -> BackupConfig:
        if self.method == "object_storage":
            missing = [
                n for n in ("endpoint", "bucket", "access_key", "secret_key") if getattr(self.object_storage, n) is None
            ]
            if missing:
                raise ValueError(f"method object_storage needs object_storage.{', object_storage.'.join(missing)}")
        return self


class Config(_Section):
    server: ServerConfig = ServerConfig()
    store: StoreConfig = StoreConfig()
    tasks: TasksConfig = TasksConfig()
    leader: LeaderConfig = LeaderConfig()
    housekeeping: HousekeepingConfig = HousekeepingConfig()
    workers: WorkersConfig = WorkersConfig()
    dispatch: DispatchConfig = DispatchConfig()
    metrics: MetricsConfig = MetricsConfig()
    apm: ApmConfig = ApmConfig()
    logging: LoggingConfig = LoggingConfig()
    auth: AuthConfig = AuthConfig()
    encryption: EncryptionConfig = EncryptionConfig()
    backup: BackupConfig = BackupConfig()

    @model_validator(mode="after")
    def _backups_of_sqlite(self) -> Config:
        # Refused rather than ignored: a setting that silently does nothing leaves a store without backups.
        if self.backup.enabled and self.store.kind != "sqlite":
            raise ValueError(
                "backup.enabled needs store.kind sqlite: Elasticsearch is backed up with its own snapshots "
                "(tasques snapshot)"
            )
        return self


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
    sources: dict[str, str] = {}  # dotted setting -> the environment variable that set it
    for key, value in sorted(env.items()):
        if key.startswith(ENV_PREFIX) and not key.startswith("TASQUES_TEST_"):
            setting = _apply_override(raw, key, value)
            if setting is not None:
                sources[setting] = key
    try:
        return Config.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(_explain(e, sources)) from None


def _explain(error: ValidationError, sources: Mapping[str, str]) -> str:
    """One line per problem, each naming the setting (and the environment variable that set it)."""
    lines = []
    for problem in error.errors():
        setting = ".".join(str(part) for part in problem["loc"])
        message = str(problem["msg"]).removeprefix("Value error, ")
        if setting in sources:
            lines.append(f"invalid setting {setting} (from {sources[setting]}): {message}")
            continue
        # A rule across settings (e.g. block_for <= max_block_for): its message names them; add the overrides.
        origins = [var for name, var in sources.items() if name.startswith(f"{setting}.") or not setting]
        suffix = f" (overridden by {', '.join(origins)})" if origins else ""
        lines.append(f"invalid setting {setting}: {message}{suffix}" if setting else f"{message}{suffix}")
    return "\n".join(lines)


def _apply_override(raw: dict[str, Any], key: str, value: str) -> str | None:
    """Put the converted value of `key` into `raw`; returns the dotted setting it names, if any."""
    found = resolve_field(Config, key[len(ENV_PREFIX) :].lower().split("_"))
    if found is None:
        # Other tools share the prefix (the worker, the test harness): warn rather than refuse to start.
        log.warning("ignoring %s: it names no setting", key)
        return None
    path, field = found
    setting = ".".join(path)
    try:
        converted = convert(field, value)
    except OverrideError as e:
        raise ConfigError(
            f"invalid setting {setting} (from {key}): {e} ({setting} is typed {describe(field)})"
        ) from None
    node = raw
    for name in path[:-1]:
        child = node.get(name)
        if not isinstance(child, dict):
            child = {}
            node[name] = child
        node = child
    node[path[-1]] = converted
    return setting


def split_host_port(address: str) -> tuple[str, int]:
    """`host:port` (IPv6 hosts in brackets) as (host, port); ValueError when it is not one."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or len(port) > 5 or int(port) > 65535:
        raise ValueError(f"{address!r} must look like host:port with a port from 0 to 65535")
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ValueError(f"{address!r}: {host} is not an IPv6 address") from None
        return host[1:-1], int(port)
    if not _HOSTNAME.fullmatch(host):
        raise ValueError(f"{address!r} must look like host:port (an IPv6 host goes in brackets)")
    return host, int(port)


def render_defaults() -> str:
    """`config.yaml` as shipped: every setting at its default, each with its description as a comment."""
    lines = [
        "# Tasques configuration. Every setting is shown at its default.",
        "# Any setting can be overridden by an environment variable: TASQUES_ + the path in upper case,",
        "# joined by underscores, e.g. TASQUES_SERVER_BIND_ADDRESS=0.0.0.0:8080 or TASQUES_STORE_KIND=elasticsearch.",
        "# An environment value is converted by the setting's type, never parsed as YAML: a string is taken verbatim,",
        "# numbers and booleans (true/false) strictly, durations as Go-style strings (30m, 1h30m), lists of strings as",
        "# a JSON list or comma-separated values, basic_auth as JSON; an empty value clears an optional setting.",
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

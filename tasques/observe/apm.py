"""Elastic APM, set up from `ApmConfig`. This module never imports the agent itself: `tasques.observe.apm_agent`
does, and only a server with `apm.enabled` loads it. So with APM off nothing of the agent is imported or started,
and the hot path pays nothing (no middleware, no store hook, the no-op tracer).

Settings: `apm:` in config.yaml becomes the agent's config dict, and the agent lets its own `ELASTIC_APM_*`
environment variables win over it (`ELASTIC_APM_SERVER_URL`, `ELASTIC_APM_SECRET_TOKEN`,
`ELASTIC_APM_TRANSACTION_SAMPLE_RATE`, ... and every other agent option, e.g. `ELASTIC_APM_API_REQUEST_TIME`).
The central configuration the APM server sends (Kibana's agent configuration) wins over both while it lasts.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import tasques
from tasques.config import ApmConfig

if TYPE_CHECKING:
    from tasques.observe.apm_agent import Agent


def agent_settings(config: ApmConfig, node_name: str | None = None) -> dict[str, Any]:
    """The agent's config dict (its own upper-case keys) for `config`."""
    settings: dict[str, Any] = {
        "SERVICE_NAME": config.service_name,
        "SERVICE_VERSION": tasques.__version__,
        "SERVER_URL": config.server_url,
        "TRANSACTION_SAMPLE_RATE": config.transaction_sample_rate,
        "VERIFY_SERVER_CERT": config.verify_server_cert,
        "FRAMEWORK_NAME": "aiohttp",
        # Our own transactions and spans only: the agent's auto-instrumentation patches aiohttp, sqlite3 and the
        # Elasticsearch client process-wide, which would double the store spans and reach other servers too.
        "INSTRUMENT": False,
        # Log lines get their trace ids from current_trace_ids(); the agent's process-wide log record factory
        # would add work to every log record of every logger.
        "DISABLE_LOG_RECORD_FACTORY": True,
    }
    for key, value in (
        ("ENVIRONMENT", config.environment),
        ("SECRET_TOKEN", config.secret_token),
        ("API_KEY", config.api_key),
        ("SERVICE_NODE_NAME", node_name),
    ):
        if value is not None:
            settings[key] = value
    return settings


def load_agent(config: ApmConfig, node_name: str | None = None, **overrides: Any) -> Agent:
    """The agent for one server (not started: `Agent.start` creates its client when the server starts).

    `overrides` are more agent options by their upper-case keys (tests shorten the flush interval with them);
    the `ELASTIC_APM_*` environment variables still win over them."""
    from tasques.observe.apm_agent import Agent

    return Agent({**agent_settings(config, node_name), **overrides})


def current_trace_ids() -> tuple[str | None, str | None]:
    """(trace id, transaction id) of the transaction in progress here; (None, None) when APM is off or there is
    none. Cheap: with the agent never loaded it is one dict lookup."""
    agent = sys.modules.get("tasques.observe.apm_agent")
    if agent is None:
        return None, None
    ids: tuple[str | None, str | None] = agent.trace_ids()
    return ids

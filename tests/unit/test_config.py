from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from tasques.config import Config, ConfigError, load_config, render_defaults


def test_defaults_without_file_or_env() -> None:
    config = load_config(None, environ={})
    assert config.server.bind_address == "127.0.0.1:8080"
    assert config.store.kind == "sqlite"
    assert config.tasks.retry_times == 25
    assert config.tasks.processing_timeout == timedelta(minutes=30)


def test_env_overrides_nested_names_with_underscores(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("server:\n  bind_address: 0.0.0.0:9000\ntasks:\n  retry_times: 3\n")
    env = {
        "TASQUES_SERVER_BIND_ADDRESS": "127.0.0.1:1234",
        "TASQUES_TASKS_PROCESSING_TIMEOUT": "1h30m",
        "TASQUES_STORE_ELASTICSEARCH_ADDRESSES": "[http://a:9200, http://b:9200]",
        "TASQUES_TEST_ES_URL": "ignored",
    }
    config = load_config(f, environ=env)
    assert config.server.bind_address == "127.0.0.1:1234"
    assert config.tasks.retry_times == 3
    assert config.tasks.processing_timeout == timedelta(hours=1, minutes=30)
    assert config.store.elasticsearch.addresses == ["http://a:9200", "http://b:9200"]


def test_unknown_env_setting_is_ignored_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    config = load_config(None, environ={"TASQUES_SERVER_NOPE": "1", "TASQUES_ES_VERSION": "9.2.4"})
    assert config == Config()
    assert "TASQUES_SERVER_NOPE" in caplog.text
    assert "TASQUES_ES_VERSION" in caplog.text


def test_invalid_value_names_the_field() -> None:
    with pytest.raises(ConfigError, match="retry_times"):
        load_config(None, environ={"TASQUES_TASKS_RETRY_TIMES": "-1"})


def test_unknown_file_key_is_an_error(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("server:\n  bind_adress: x\n")
    with pytest.raises(ConfigError, match="bind_adress"):
        load_config(f, environ={})


def test_shipped_config_yaml_documents_every_default() -> None:
    shipped = Path(__file__).resolve().parents[2] / "config.yaml"
    assert shipped.read_text() == render_defaults(), "regenerate with `tasques config > config.yaml`"
    assert load_config(shipped, environ={}) == Config()


# Environment overrides are converted by the setting's type, never parsed as YAML.


def test_a_string_setting_is_taken_verbatim() -> None:
    env = {
        "TASQUES_STORE_ELASTICSEARCH_PASSWORD": "#s3cret",
        "TASQUES_STORE_ELASTICSEARCH_USER": "12:30",
        "TASQUES_STORE_ELASTICSEARCH_API_KEY": "null",
        "TASQUES_STORE_SQLITE_PATH": " ./with spaces.db ",
        "TASQUES_STORE_ELASTICSEARCH_INDEX_PREFIX": "yes",
    }
    config = load_config(None, environ=env)
    es = config.store.elasticsearch
    assert es.password == "#s3cret"
    assert es.user == "12:30"
    assert es.api_key == "null"
    assert es.index_prefix == "yes"
    assert config.store.sqlite.path == " ./with spaces.db "


def test_an_empty_value_clears_an_optional_setting(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("store:\n  elasticsearch:\n    user: elastic\n")
    config = load_config(f, environ={"TASQUES_STORE_ELASTICSEARCH_USER": ""})
    assert config.store.elasticsearch.user is None


@pytest.mark.parametrize(
    ("key", "value", "read"),
    [
        ("TASQUES_TASKS_RETRY_TIMES", " 7 ", lambda c: c.tasks.retry_times == 7),
        ("TASQUES_TASKS_BACKOFF_MULTIPLIER", "1.5", lambda c: c.tasks.backoff.multiplier == 1.5),
        ("TASQUES_SERVER_ACCESS_LOG", "TRUE", lambda c: c.server.access_log is True),
        ("TASQUES_DISPATCH_ENABLED", "0", lambda c: c.dispatch.enabled is False),
        ("TASQUES_LEADER_LEASE", "1m30s", lambda c: c.leader.lease == timedelta(seconds=90)),
        (
            "TASQUES_STORE_ELASTICSEARCH_ADDRESSES",
            '["http://a:9200", "http://b:9200"]',
            lambda c: c.store.elasticsearch.addresses == ["http://a:9200", "http://b:9200"],
        ),
        (
            "TASQUES_STORE_ELASTICSEARCH_ADDRESSES",
            "http://a:9200, http://b:9200",
            lambda c: c.store.elasticsearch.addresses == ["http://a:9200", "http://b:9200"],
        ),
        (
            "TASQUES_SERVER_BASIC_AUTH",
            '[{"name": "ops", "password": "#1: yes"}]',
            lambda c: [(u.name, u.password) for u in c.server.basic_auth] == [("ops", "#1: yes")],
        ),
    ],
)
def test_typed_values_are_parsed_by_the_setting_type(key: str, value: str, read: Callable[[Config], bool]) -> None:
    assert read(load_config(None, environ={key: value}))


@pytest.mark.parametrize(
    ("key", "value", "setting"),
    [
        ("TASQUES_TASKS_RETRY_TIMES", "3.0", "tasks.retry_times"),
        ("TASQUES_TASKS_RETRY_TIMES", "0x10", "tasks.retry_times"),
        ("TASQUES_TASKS_RETRY_TIMES", "9" * 5000, "tasks.retry_times"),
        ("TASQUES_TASKS_BACKOFF_MULTIPLIER", "nan", "tasks.backoff.multiplier"),
        ("TASQUES_TASKS_BACKOFF_MULTIPLIER", "two", "tasks.backoff.multiplier"),
        ("TASQUES_SERVER_ACCESS_LOG", "maybe", "server.access_log"),
        ("TASQUES_SERVER_BASIC_AUTH", "ops:pw", "server.basic_auth"),
        ("TASQUES_STORE_ELASTICSEARCH_ADDRESSES", "[1, 2]", "store.elasticsearch.addresses"),
    ],
)
def test_an_unconvertible_override_names_the_variable_and_the_setting(key: str, value: str, setting: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(None, environ={key: value})
    assert key in str(e.value)
    assert setting in str(e.value)


def test_a_bad_duration_override_names_the_variable_and_the_setting() -> None:
    with pytest.raises(ConfigError) as e:
        load_config(None, environ={"TASQUES_LEADER_LEASE": "12:30"})
    assert "leader.lease" in str(e.value)
    assert "TASQUES_LEADER_LEASE" in str(e.value)


# Every duration and bound is checked at start-up, naming the setting.


@pytest.mark.parametrize(
    ("yaml_text", "setting"),
    [
        ("tasks:\n  processing_timeout: 0s\n", "tasks.processing_timeout"),
        ("tasks:\n  processing_timeout: -1s\n", "tasks.processing_timeout"),
        ("tasks:\n  block_for: -1s\n", "tasks.block_for"),
        ("tasks:\n  block_for: 2m\n  max_block_for: 1m\n", "tasks.block_for"),
        ("tasks:\n  claim_poll_interval: 0s\n", "tasks.claim_poll_interval"),
        ("tasks:\n  max_claim_amount: 100000\n", "tasks.max_claim_amount"),
        ("tasks:\n  retry_times: 99999999999\n", "tasks.retry_times"),
        ("tasks:\n  backoff:\n    initial: 2h\n", "tasks.backoff.initial"),
        ("leader:\n  renew_every: 5s\n", "leader.renew_every"),
        ("leader:\n  lease: 0s\n", "leader.lease"),
        ("housekeeping:\n  reap_every: 0s\n", "housekeeping.reap_every"),
        ("housekeeping:\n  recurring_every: -5s\n", "housekeeping.recurring_every"),
        ("housekeeping:\n  archive_every: 0s\n", "housekeeping.archive_every"),
        ("housekeeping:\n  timeline_retention: 0s\n", "housekeeping.timeline_retention"),
        ("housekeeping:\n  batch_size: 0\n", "housekeeping.batch_size"),
        ("dispatch:\n  poll_interval: 0s\n", "dispatch.poll_interval"),
        ("dispatch:\n  max_concurrent_dispatches: 10000000000000000000000000000000\n", "dispatch.max_concurrent"),
        ("server:\n  bind_address: localhost\n", "server.bind_address"),
        ("server:\n  bind_address: '127.0.0.1:99999'\n", "server.bind_address"),
        ("server:\n  bind_address: ':8080'\n", "server.bind_address"),
        ("server:\n  bind_address: 'a b:8080'\n", "server.bind_address"),
        ("server:\n  bind_address: '[nope]:8080'\n", "server.bind_address"),
        ("server:\n  shutdown_grace: -1s\n", "server.shutdown_grace"),
        ("store:\n  elasticsearch:\n    request_timeout: 0s\n", "store.elasticsearch.request_timeout"),
        ("store:\n  elasticsearch:\n    page_size: 10001\n", "store.elasticsearch.page_size"),
        ("store:\n  elasticsearch:\n    page_size: 0\n", "store.elasticsearch.page_size"),
        ("store:\n  elasticsearch:\n    archive_retention: 0s\n", "store.elasticsearch.archive_retention"),
        ("store:\n  elasticsearch:\n    shards: 5000\n", "store.elasticsearch.shards"),
    ],
)
def test_every_duration_and_bound_is_validated(tmp_path: Path, yaml_text: str, setting: str) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(yaml_text)
    with pytest.raises(ConfigError, match=setting.replace(".", r"\.")):
        load_config(f, environ={})


@pytest.mark.parametrize("address", ["0.0.0.0:8080", "localhost:0", "[::1]:9000", "tasques.internal:443"])
def test_well_formed_bind_addresses_are_accepted(address: str) -> None:
    assert load_config(None, environ={"TASQUES_SERVER_BIND_ADDRESS": address}).server.bind_address == address


def test_serve_with_a_bad_setting_exits_non_zero_naming_it(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASQUES_")}
    env.update({"TASQUES_STORE_SQLITE_PATH": str(tmp_path / "t.db"), "TASQUES_LEADER_RENEW_EVERY": "10s"})
    done = subprocess.run(
        [sys.executable, "-m", "tasques.cli", "serve"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "leader.renew_every" in done.stderr
    assert "TASQUES_LEADER_RENEW_EVERY" in done.stderr
    assert not (tmp_path / "t.db").exists()

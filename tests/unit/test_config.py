from __future__ import annotations

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

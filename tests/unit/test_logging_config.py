"""`logging.format` / `logging.level` from config and environment, and the CLI flags that override them."""

from __future__ import annotations

import argparse

import pytest

from tasques.cli import with_logging_flags
from tasques.config import ConfigError, load_config
from tasques.observe.logs import add_logging_arguments


def flags(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_logging_arguments(parser)
    return parser.parse_args(list(argv))


def test_defaults_are_text_at_info() -> None:
    config = load_config(None, environ={})
    assert (config.logging.format, config.logging.level) == ("text", "info")


def test_environment_values_take_any_case() -> None:
    config = load_config(None, environ={"TASQUES_LOGGING_FORMAT": "JSON", "TASQUES_LOGGING_LEVEL": " Debug "})
    assert (config.logging.format, config.logging.level) == ("json", "debug")


def test_an_unknown_level_names_the_setting() -> None:
    with pytest.raises(ConfigError, match=r"logging\.level \(from TASQUES_LOGGING_LEVEL\)"):
        load_config(None, environ={"TASQUES_LOGGING_LEVEL": "verbose"})


def test_flags_override_the_config_one_at_a_time() -> None:
    config = load_config(None, environ={"TASQUES_LOGGING_FORMAT": "json", "TASQUES_LOGGING_LEVEL": "warning"})
    assert with_logging_flags(config, flags()) is config
    level_only = with_logging_flags(config, flags("--log-level", "DEBUG"))
    assert (level_only.logging.format, level_only.logging.level) == ("json", "debug")
    format_only = with_logging_flags(config, flags("--log-format", "text"))
    assert (format_only.logging.format, format_only.logging.level) == ("text", "warning")
    assert format_only.server == config.server  # the rest of the config is untouched


def test_flags_refuse_unknown_values() -> None:
    with pytest.raises(SystemExit):
        flags("--log-level", "verbose")
    with pytest.raises(SystemExit):
        flags("--log-format", "xml")

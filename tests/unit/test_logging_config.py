"""`logging.format` / `logging.level` from config and environment, and the CLI flags that override them."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator

import pytest

from tasques.cli import with_logging_flags
from tasques.config import ConfigError, load_config
from tasques.observe.logs import LIBRARY_LOGGERS, OneLineRetries, add_logging_arguments, quiet_libraries


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


@pytest.fixture
def transport_logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger("elastic_transport.transport")
    kept = list(logger.filters)
    levels = {name: logging.getLogger(name).level for name in LIBRARY_LOGGERS}
    yield logger
    logger.filters[:] = kept
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def _retry_record() -> logging.LogRecord:
    try:
        raise ConnectionRefusedError(111, "Connection refused")
    except ConnectionRefusedError:
        exc_info = sys.exc_info()
    return logging.LogRecord(
        "elastic_transport.transport", logging.WARNING, __file__, 1,
        "Retrying request after failure (attempt %d of %d)", (1, 2), exc_info,
    )  # fmt: skip


def test_a_retried_request_is_one_line_with_its_error(transport_logger: logging.Logger) -> None:
    quiet_libraries("info")
    quiet_libraries("warning")  # configuring again adds no second filter
    assert [type(f) for f in transport_logger.filters].count(OneLineRetries) == 1
    record = _retry_record()
    assert transport_logger.filter(record)
    text = logging.Formatter("%(message)s").format(record)
    assert (
        text
        == "Retrying request after failure (attempt 1 of 2): ConnectionRefusedError: [Errno 111] Connection refused"
    )
    assert "Traceback" not in text


def test_debug_keeps_the_library_traceback(transport_logger: logging.Logger) -> None:
    quiet_libraries("debug")
    assert not any(isinstance(f, OneLineRetries) for f in transport_logger.filters)
    record = _retry_record()
    assert transport_logger.filter(record)
    assert "Traceback" in logging.Formatter("%(message)s").format(record)

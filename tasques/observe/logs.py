"""Server logs: text lines as always, or JSON lines with Elastic Common Schema (ECS) field names.

Dotted ECS names are emitted as nested objects (`{"log": {"level": "info"}}`), never as dotted keys, so a
consumer sees one shape whatever the field. Fields a logging call passes with `extra=` (see
`tasques.log_fields`) are nested the same way; they never replace the fields this formatter sets.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, Literal, TextIO

ECS_VERSION = "8.11.0"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Client libraries that log at INFO per request (elastic_transport: one line per Elasticsearch call): quiet
# at WARNING unless the level is debug.
LIBRARY_LOGGERS = ("elastic_transport", "elasticsearch", "elasticapm", "urllib3")
Format = Literal["text", "json"]
Level = Literal["debug", "info", "warning", "error"]
# (trace.id, transaction.id) of the APM transaction current where a line is logged; (None, None) without one.
TraceIds = Callable[[], tuple[str | None, str | None]]

# Every attribute a LogRecord has of its own; anything else on a record came from `extra=`.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
_MAX_DEPTH = 6  # of an extra value: deeper (or cyclic) structures are cut to their str()


def no_trace_ids() -> tuple[str | None, str | None]:
    return None, None


class EcsJsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines in messages and stack traces are escaped)."""

    def __init__(self, service_name: str = "tasques", trace_ids: TraceIds = no_trace_ids) -> None:
        super().__init__()
        self._service_name = service_name
        self._trace_ids = trace_ids
        self._pid = os.getpid()

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "@timestamp": _timestamp(record),
            "log": {
                "level": record.levelname.lower(),
                "logger": record.name,
                "origin": {"file": {"name": record.filename, "line": record.lineno}, "function": record.funcName},
            },
            "message": self._message(record),
            "ecs": {"version": ECS_VERSION},
            "service": {"name": self._service_name},
            "process": {"pid": self._pid},
        }
        if record.exc_info and record.exc_info[1] is not None:
            doc["error"] = self._error(record)
        trace_id, transaction_id = self._trace_ids()
        if trace_id:
            doc["trace"] = {"id": trace_id}
        if transaction_id:
            doc["transaction"] = {"id": transaction_id}
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_"):
                _put(doc, key.split("."), _jsonable(value, 0))
        return json.dumps(doc, ensure_ascii=True, allow_nan=False, separators=(",", ":"))

    def _message(self, record: logging.LogRecord) -> str:
        try:
            message = record.getMessage()
        except Exception:  # a call whose arguments do not fit its format string still gets its line
            message = f"{_text(record.msg)} (unformattable arguments: {_text(record.args)})"
        if record.stack_info:
            message = f"{message}\n{self.formatStack(record.stack_info)}"
        return message

    def _error(self, record: logging.LogRecord) -> dict[str, str]:
        exc_type, exc, _ = record.exc_info or (None, None, None)
        if record.exc_text is None:
            record.exc_text = self.formatException(record.exc_info)  # type: ignore[arg-type]  # checked by format
        name = exc_type.__qualname__ if exc_type is not None else "Exception"
        module = exc_type.__module__ if exc_type is not None else "builtins"
        return {
            "type": name if module == "builtins" else f"{module}.{name}",
            "message": _text(exc),
            "stack_trace": record.exc_text,
        }


def _timestamp(record: logging.LogRecord) -> str:
    """UTC ISO 8601 with milliseconds: 2025-01-31T12:00:00.123Z."""
    whole = int(record.created)
    millis = min(999, int((record.created - whole) * 1000))
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{millis:03d}Z"


def _put(doc: dict[str, Any], path: list[str], value: Any) -> None:
    """Set doc[a][b][c] for path a.b.c, unless that would replace a value already there (first one wins)."""
    node = doc
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            return
        node = child
    node.setdefault(path[-1], value)


def _jsonable(value: Any, depth: int) -> Any:
    """`value` as plain JSON types: str(), or repr() when that fails, for whatever JSON cannot hold."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if depth < _MAX_DEPTH and isinstance(value, Mapping):
        return {_text(k): _jsonable(v, depth + 1) for k, v in value.items()}
    if depth < _MAX_DEPTH and isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v, depth + 1) for v in value]
    return _text(value)


def _text(value: object) -> str:
    try:
        return str(value)
    except Exception:
        try:
            return repr(value)
        except Exception:
            return f"<unprintable {type(value).__name__}>"


def configure_logging(
    fmt: Format,
    level: Level,
    *,
    service_name: str = "tasques",
    trace_ids: TraceIds = no_trace_ids,
    stream: TextIO | None = None,
) -> logging.Handler | None:
    """Send every log record of the process to `stream` (standard error) in `fmt` from `level` up.

    Like `logging.basicConfig`, does nothing (and returns None) when the root logger has handlers already: a
    program embedding the CLI, or a test's capture, keeps its own logging. In JSON, Python warnings and
    uncaught exceptions become log records too, so that every line is JSON."""
    root = logging.getLogger()
    if root.handlers:
        return None
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    if fmt == "json":
        handler.setFormatter(EcsJsonFormatter(service_name, trace_ids))
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(level.upper())
    quiet_libraries(level)
    if fmt == "json":
        logging.captureWarnings(True)
        sys.excepthook = _log_uncaught
    return handler


class OneLineRetries(logging.Filter):
    """elastic-transport logs a whole traceback with every retried request (`max_retries`), so a dead node
    would fill the log with them: keep the line, with the error's one-line summary instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            record.msg = f"{record.getMessage()}: {type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
        return True


def quiet_libraries(level: Level) -> None:
    """Client libraries at WARNING, retries on one line; at debug, everything as the library logs it."""
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if level == "debug" else logging.WARNING)
    transport = logging.getLogger("elastic_transport.transport")
    for f in [f for f in transport.filters if isinstance(f, OneLineRetries)]:
        transport.removeFilter(f)
    if level != "debug":
        transport.addFilter(OneLineRetries())


def add_logging_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level",
        type=str.lower,
        choices=("debug", "info", "warning", "error"),
        help="overrides logging.level (default: info)",
    )
    parser.add_argument("--log-format", choices=("text", "json"), help="overrides logging.format (default: text)")


def _log_uncaught(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, tb)
        return
    logging.getLogger("tasques").critical("uncaught exception", exc_info=(exc_type, exc, tb))


class HeldRecords(logging.Handler):
    """Keeps the records logged before logging is configured (say, config warnings), to log them after."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def replay(self) -> None:
        """Log each held record again, through the handlers and levels configured now."""
        for record in self.records:
            logger = logging.getLogger(record.name)
            if logger.isEnabledFor(record.levelno):
                logger.handle(record)
        self.records.clear()


@contextlib.contextmanager
def holding_records() -> Iterator[HeldRecords]:
    """While inside, records of every level are held instead of written; `replay()` them afterwards."""
    root = logging.getLogger()
    held = HeldRecords()
    level = root.level
    root.addHandler(held)
    root.setLevel(logging.DEBUG)
    try:
        yield held
    finally:
        root.removeHandler(held)
        root.setLevel(level)


def log_store_calls(logger: logging.Logger) -> Callable[[str, str], AbstractContextManager[object]]:
    """A store hook (see observe/store.py) logging each store call at DEBUG with its duration. Installed only
    at the debug level: it costs a clock read and a record per call."""

    @contextlib.contextmanager
    def hook(backend: str, operation: str) -> Iterator[None]:
        start = time.perf_counter_ns()
        try:
            yield
        except BaseException as e:
            _store_line(logger, backend, operation, start, type(e).__name__)
            raise
        _store_line(logger, backend, operation, start, None)

    return hook


def _store_line(logger: logging.Logger, backend: str, operation: str, start: int, error: str | None) -> None:
    took = time.perf_counter_ns() - start
    fields = {"event.duration": took, "tasques.store.backend": backend, "tasques.store.operation": operation}
    if error is None:
        logger.debug("store %s.%s took %.2f ms", backend, operation, took / 1e6, extra=fields)
    else:
        logger.debug("store %s.%s raised %s after %.2f ms", backend, operation, error, took / 1e6, extra=fields)

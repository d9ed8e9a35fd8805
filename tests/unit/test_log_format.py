"""The JSON log format: every ECS field, exceptions, extra fields (nested, whatever their type), unicode."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from tasques.log_fields import about
from tasques.observe.logs import ECS_VERSION, EcsJsonFormatter, TraceIds, no_trace_ids

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


class Captured:
    """A real logger writing through the formatter into a buffer; one parsed object per line."""

    def __init__(self, trace_ids: TraceIds = no_trace_ids, service_name: str = "tasques") -> None:
        self.buffer = io.StringIO()
        handler = logging.StreamHandler(self.buffer)
        handler.setFormatter(EcsJsonFormatter(service_name, trace_ids))
        self.logger = logging.getLogger(f"test.logs.{uuid.uuid4().hex[:8]}")
        self.logger.propagate = False
        self.logger.setLevel(logging.DEBUG)
        self.logger.addHandler(handler)

    def lines(self) -> list[str]:
        return self.buffer.getvalue().splitlines()

    def docs(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines()]

    def one(self) -> dict[str, Any]:
        docs = self.docs()
        assert len(docs) == 1, docs
        return docs[0]


@pytest.fixture
def captured() -> Iterator[Captured]:
    c = Captured()
    yield c
    c.logger.handlers.clear()


def test_every_ecs_field_of_a_plain_line(captured: Captured) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    captured.logger.info("hello %s", "world")
    doc = captured.one()
    assert TIMESTAMP.fullmatch(doc["@timestamp"]), doc["@timestamp"]
    stamp = datetime.strptime(doc["@timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert before <= stamp <= datetime.now(UTC)
    assert doc["log"]["level"] == "info"
    assert doc["log"]["logger"] == captured.logger.name
    assert doc["log"]["origin"]["function"] == "test_every_ecs_field_of_a_plain_line"
    assert doc["log"]["origin"]["file"]["name"] == "test_log_format.py"
    assert isinstance(doc["log"]["origin"]["file"]["line"], int)
    assert doc["message"] == "hello world"
    assert doc["ecs"] == {"version": ECS_VERSION}
    assert doc["service"] == {"name": "tasques"}
    assert doc["process"] == {"pid": os.getpid()}
    # Nothing that was not asked for: no error, no trace ids without APM, no task fields.
    assert set(doc) == {"@timestamp", "log", "message", "ecs", "service", "process"}


def test_dotted_names_are_nested_objects_never_dotted_keys(captured: Captured) -> None:
    captured.logger.warning("x", extra=about(task_id="t1", queue="q1", worker_id="w1"))
    doc = captured.one()

    def keys(node: dict[str, Any]) -> Iterator[str]:
        for key, value in node.items():
            yield key
            if isinstance(value, dict):
                yield from keys(value)

    assert not [k for k in keys(doc) if "." in k]
    assert doc["tasques"] == {"task": {"id": "t1"}, "queue": "q1", "worker": {"id": "w1"}}


@pytest.mark.parametrize(
    ("level", "name"),
    [(logging.DEBUG, "debug"), (logging.INFO, "info"), (logging.WARNING, "warning"), (logging.ERROR, "error"),
     (logging.CRITICAL, "critical")],
)  # fmt: skip
def test_levels_are_lower_case(captured: Captured, level: int, name: str) -> None:
    captured.logger.log(level, "m")
    assert captured.one()["log"]["level"] == name


def test_service_name_and_trace_ids_come_from_the_wiring() -> None:
    c = Captured(trace_ids=lambda: ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"), service_name="billing")
    c.logger.info("in a transaction")
    doc = c.one()
    assert doc["service"] == {"name": "billing"}
    assert doc["trace"] == {"id": "0af7651916cd43dd8448eb211c80319c"}
    assert doc["transaction"] == {"id": "b7ad6b7169203331"}


def test_a_trace_without_a_transaction_id_emits_only_the_trace() -> None:
    c = Captured(trace_ids=lambda: ("abc", None))
    c.logger.info("m")
    doc = c.one()
    assert doc["trace"] == {"id": "abc"}
    assert "transaction" not in doc


def test_an_exception_fills_the_error_fields_on_one_line(captured: Captured) -> None:
    try:
        raise KeyError("missing\nthing")
    except KeyError:
        captured.logger.exception("lookup failed")
    [line] = captured.lines()  # the traceback's newlines are escaped: still one line
    doc = json.loads(line)
    assert doc["message"] == "lookup failed"
    assert doc["log"]["level"] == "error"
    assert doc["error"]["type"] == "KeyError"
    assert doc["error"]["message"] == "'missing\\nthing'"
    assert doc["error"]["stack_trace"].startswith("Traceback (most recent call last):")
    assert 'raise KeyError("missing\\nthing")' in doc["error"]["stack_trace"]


class CustomError(Exception):
    pass


def test_error_type_is_qualified_outside_builtins(captured: Captured) -> None:
    captured.logger.warning("x", exc_info=CustomError("boom"))
    error = captured.one()["error"]
    assert error["type"] == f"{__name__}.CustomError"
    assert error["message"] == "boom"


def test_exc_info_without_an_exception_adds_no_error(captured: Captured) -> None:
    captured.logger.error("no exception here", exc_info=True)  # outside an except: (None, None, None)
    assert "error" not in captured.one()


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class Point:
    def __str__(self) -> str:
        return "Point(1, 2)"


def test_extras_of_any_type_become_json(captured: Captured) -> None:
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    extra = {
        "count": 3,
        "ratio": 0.5,
        "nan": float("nan"),
        "flag": True,
        "nothing": None,
        "when": datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
        "point": Point(),
        "bad": Unprintable(),
        "nested": {"a": [1, (2, 3)], 4: {"deep": b"bytes"}},
        "cyclic": cyclic,
    }
    captured.logger.info("extras", extra=extra)
    doc = captured.one()
    assert doc["count"] == 3
    assert doc["ratio"] == 0.5
    assert doc["nan"] == "nan"  # JSON has no NaN
    assert doc["flag"] is True
    assert doc["nothing"] is None
    assert doc["when"] == "2025-01-02 03:04:05+00:00"
    assert doc["point"] == "Point(1, 2)"
    assert doc["bad"] == "<unprintable Unprintable>"
    assert doc["nested"] == {"a": [1, [2, 3]], "4": {"deep": "b'bytes'"}}
    depth, node = 0, doc["cyclic"]
    while isinstance(node, list):
        depth, node = depth + 1, node[0]
    assert isinstance(node, str)  # cut to its str() at a bounded depth
    assert depth <= 7


def test_extras_never_replace_the_formatters_fields(captured: Captured) -> None:
    captured.logger.info("real", extra={"log.level": "forged", "service.name": "forged", "ecs": "forged"})
    doc = captured.one()
    assert doc["log"]["level"] == "info"
    assert doc["service"] == {"name": "tasques"}
    assert doc["ecs"] == {"version": ECS_VERSION}


def test_conflicting_extras_keep_the_first(captured: Captured) -> None:
    captured.logger.info("m", extra={"a": "leaf", "a.b": "under a leaf", "c.d": 1, "c.e": 2})
    doc = captured.one()
    assert doc["a"] == "leaf"
    assert doc["c"] == {"d": 1, "e": 2}


def test_unicode_round_trips_and_the_line_is_ascii(captured: Captured) -> None:
    text = "héllo ✓ 日本語 \U0001f680 \u2028 tab\there"
    captured.logger.info("%s", text, extra=about(queue="файлы"))
    [line] = captured.lines()
    assert line.isascii()  # valid whatever the stream's encoding
    doc = json.loads(line)
    assert doc["message"] == text
    assert doc["tasques"]["queue"] == "файлы"


def test_a_lone_surrogate_does_not_break_the_line() -> None:
    # Formatted directly: pytest's report of a captured record cannot carry a lone surrogate across processes.
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "bad \udcff byte", (), None)
    line = EcsJsonFormatter().format(record)
    assert line.isascii()
    assert json.loads(line)["message"] == "bad \udcff byte"


def test_arguments_that_do_not_fit_still_give_a_line() -> None:
    # Formatted directly: pytest's own capture handler would raise on this record first.
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "two %s %s", ("only-one",), None)
    message = json.loads(EcsJsonFormatter().format(record))["message"]
    assert "two %s %s" in message
    assert "only-one" in message


def test_stack_info_is_kept_in_the_message(captured: Captured) -> None:
    captured.logger.info("where", stack_info=True)
    message = captured.one()["message"]
    assert message.startswith("where\nStack (most recent call last):")
    assert "test_stack_info_is_kept_in_the_message" in message


def test_in_json_warnings_and_uncaught_exceptions_are_json_lines_too() -> None:
    script = (
        "import logging, warnings\n"
        "from tasques.observe.logs import configure_logging\n"
        "configure_logging('json', 'info')\n"
        "logging.getLogger('elastic_transport.transport').info('one line per request')\n"
        "warnings.warn('careful')\n"
        "raise ValueError('crashed')\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 1
    docs = [json.loads(line) for line in proc.stderr.splitlines()]
    assert [(d["log"]["logger"], d["log"]["level"]) for d in docs] == [
        ("py.warnings", "warning"),
        ("tasques", "critical"),
    ]
    assert "careful" in docs[0]["message"]
    assert docs[1]["error"]["type"] == "ValueError"
    assert docs[1]["error"]["message"] == "crashed"

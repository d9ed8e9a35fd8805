"""Property-based fuzzing of a real `tasques serve` (SQLite): no request may make the server answer 5xx.

1. schemathesis generates requests from the served OpenAPI document (valid and invalid ones, fixed seed) for
   every operation;
2. hypothesis feeds extreme durations, integers and names to every field and path parameter that takes one.

The dispatcher is off, so generated HTTP-target tasks never leave the machine.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.result import Ok

from tests.process import ServerProcess

pytestmark = pytest.mark.slow

SEED = 20240102
EXAMPLES_PER_OPERATION_AND_MODE = 28
MIN_CASES = 2000


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("fuzz")
    settings = {
        "TASQUES_STORE_KIND": "sqlite",
        "TASQUES_STORE_SQLITE_PATH": str(tmp / "tasques.db"),
        "TASQUES_DISPATCH_ENABLED": "false",
        # Claims on empty queues wait (3 s when block_for is absent): cap every wait, or the claims alone take
        # a minute of the run. A longer block_for is still accepted, and cut to this.
        "TASQUES_TASKS_BLOCK_FOR": "50ms",
        "TASQUES_TASKS_MAX_BLOCK_FOR": "50ms",
    }
    process = ServerProcess(settings, tmp / "server.log", cli_args=["--log-level", "WARNING"])
    try:
        yield process.start()
    finally:
        process.stop()


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


def _describe(method: str, path: str, body: Any, status: int, text: str) -> str:
    return f"{method} {path} {body!r:.300} -> {status}: {text[:300]}"


def test_openapi_fuzz_finds_no_server_error(fuzz_server: ServerProcess, session: requests.Session) -> None:
    schema = schemathesis.openapi.from_url(f"{fuzz_server.url}/openapi.json")
    statuses: Counter[int] = Counter()
    server_errors: list[str] = []
    started = time.monotonic()
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @seed(SEED)
            @settings(
                max_examples=EXAMPLES_PER_OPERATION_AND_MODE,
                database=None,
                deadline=None,
                derandomize=True,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case: schemathesis.Case[Any]) -> None:
                response = case.call(base_url=fuzz_server.url, session=session, timeout=30)
                statuses[response.status_code] += 1
                if response.status_code >= 500:
                    server_errors.append(
                        _describe(case.method, case.formatted_path, case.body, response.status_code, response.text)
                    )

            try:
                run()
            except Unsatisfiable:
                continue  # an operation with nothing to make invalid (e.g. GET /health) has no negative cases
    elapsed = time.monotonic() - started
    cases = sum(statuses.values())
    print(f"schemathesis: {cases} cases in {elapsed:.1f}s, statuses {dict(sorted(statuses.items()))}")
    assert not server_errors, "\n".join(server_errors[:20]) + "\n" + fuzz_server.log_tail()
    assert cases >= MIN_CASES, statuses
    # The valid half must reach past validation, or the fuzz would test only the 400 path.
    assert statuses[200] + statuses[201] >= 200, statuses


# Hypothesis: extreme values for every bounded field, over HTTP.

_UNITS = st.sampled_from(["ns", "us", "µs", "ms", "s", "m", "h"])
_NUMBERS = st.one_of(
    st.integers(min_value=0, max_value=10**20).map(str),
    st.floats(min_value=0, max_value=1e20, allow_nan=False).map(lambda f: f"{f:.6f}"),
    st.sampled_from(["0", "1", "9999999999999999", "2562047", "87600", "87601", "720", "721", "8784", "8785"]),
)
DURATIONS = st.one_of(
    st.builds(lambda sign, n, u: f"{sign}{n}{u}", st.sampled_from(["", "-", "+"]), _NUMBERS, _UNITS),
    st.sampled_from(["0", "", " ", "1h1h", "1.h", ".s", "2562047h47m16.854775807s", "9" * 70 + "h"]),
    st.text(max_size=30),
)
INTEGERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, -1, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**63, 10**30, 1_000_000, 1_000_001]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.integers().map(str),
)
NAMES = st.one_of(
    st.text(max_size=300),
    st.text(alphabet="abc/?#% .:@~+=-_\x00\n\u00e9", max_size=20),
    st.sampled_from(["", "a/b", "a" * 200, "a" * 201, "a" * 256, "a" * 257, "x" * 600, "..", ".", "%2F"]),
    st.sampled_from(["²", "١٢", "1" * 5000, "-1", "0", "NaN"]),
)
RUN_ATS = st.one_of(
    st.integers(min_value=-(10**16), max_value=10**16),
    st.sampled_from(
        [
            "0001-01-01T00:00:00Z",
            "0001-01-01T00:00:00.000Z",
            "1969-12-31T23:59:59Z",
            "2199-12-31T23:59:59.999999Z",
            "2200-01-01T00:00:00Z",
            "2262-04-12T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "Dec 12 2300 12:12:12 AM +07:00",
        ]
    ),
    st.text(max_size=40),
)

_HYPOTHESIS = settings(
    max_examples=60, database=None, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)


SENT: Counter[str] = Counter()


@pytest.fixture(autouse=True)
def _each_test_sends_many_requests(request: pytest.FixtureRequest) -> Iterator[None]:
    before = SENT.total()
    yield
    if request.node.name.startswith("test_extreme"):
        assert SENT.total() - before >= 40, "hypothesis generated too few cases to mean anything"


def _request(server: ServerProcess, session: requests.Session, method: str, path: str, body: Any = None) -> None:
    SENT[method] += 1
    response = session.request(
        method, f"{server.url}{path}", json=body, headers={"X-TASQUES-WORKER-ID": "fuzz"}, timeout=30
    )
    assert response.status_code < 500, _describe(method, path, body, response.status_code, response.text)
    if len(path) < 8000:  # longer request lines are refused by aiohttp's parser itself, as text
        assert response.headers["Content-Type"].startswith("application/json"), response.headers


def _task(**fields: Any) -> dict[str, Any]:
    return {"queue": "fuzz", "kind": "k", **fields}


def _retry(**fields: Any) -> dict[str, Any]:
    return _task(retry_policy=fields)


# Every duration field of every body: (method, path, body builder).
_DURATION_FIELDS = [
    ("POST", "/tasques", lambda d: _task(processing_timeout=d)),
    ("POST", "/tasques", lambda d: _task(repeat={"interval": d})),
    ("POST", "/tasques", lambda d: _retry(mode="linear", retry_interval=d)),
    ("POST", "/tasques", lambda d: _retry(min_backoff=d)),
    ("POST", "/tasques", lambda d: _retry(max_backoff=d)),
    ("POST", "/tasques", lambda d: _retry(max_retry_duration=d)),
    ("POST", "/tasques/bulk", lambda d: {"tasks": [_task(processing_timeout=d)]}),
    ("POST", "/tasques/claims", lambda d: {"queues": ["fuzz-empty"], "block_for": d}),
    ("PUT", "/queues/fuzz/settings", lambda d: {"retry_policy": {"mode": "linear", "retry_interval": d}}),
    (
        "POST",
        "/recurring_tasques",
        lambda d: {"id": "r", "schedule_expression": f"@every {d}", "task_definition": _task(processing_timeout=d)},
    ),
    ("PUT", "/recurring_tasques/r", lambda d: {"task_definition": _task(processing_timeout=d)}),
]


@pytest.mark.parametrize(("method", "path", "build"), _DURATION_FIELDS)
def test_extreme_durations_never_5xx(
    fuzz_server: ServerProcess, session: requests.Session, method: str, path: str, build: Any
) -> None:
    @_HYPOTHESIS
    @given(duration=DURATIONS)
    def run(duration: str) -> None:
        # block_for is clamped, so keep it from waiting: the server's max_block_for is the default 60s.
        if path == "/tasques/claims" and not duration.startswith("-"):
            duration = "-" + duration if duration else duration
        _request(fuzz_server, session, method, path, build(duration))

    run()


_INTEGER_FIELDS = [
    ("POST", "/tasques", lambda i: _task(priority=i)),
    ("POST", "/tasques", lambda i: _task(retry_times=i)),
    ("POST", "/tasques", lambda i: _task(execution_delay=i)),
    ("POST", "/tasques", lambda i: _task(run_at=i)),
    ("POST", "/tasques", lambda i: _task(repeat={"interval": "1s", "times": i})),
    ("POST", "/tasques", lambda i: _retry(retry_times=i)),
    ("POST", "/tasques", lambda i: _retry(max_doublings=i)),
    ("POST", "/tasques/claims", lambda i: {"queues": ["fuzz-empty"], "amount": i, "block_for": "0s"}),
    ("PUT", "/queues/fuzz/settings", lambda i: {"max_concurrent_dispatches": i}),
    ("PUT", "/queues/fuzz/settings", lambda i: {"max_dispatches_per_second": i}),
    ("PUT", "/recurring_tasques/r", lambda i: {"task_definition": _task(priority=i, retry_times=i)}),
]


@pytest.mark.parametrize(("method", "path", "build"), _INTEGER_FIELDS)
def test_extreme_integers_never_5xx(
    fuzz_server: ServerProcess, session: requests.Session, method: str, path: str, build: Any
) -> None:
    @_HYPOTHESIS
    @given(value=INTEGERS)
    def run(value: Any) -> None:
        _request(fuzz_server, session, method, path, build(value))

    run()


def test_extreme_run_at_never_5xx(fuzz_server: ServerProcess, session: requests.Session) -> None:
    @_HYPOTHESIS
    @given(run_at=RUN_ATS, retry=st.sampled_from(["1s", "720h"]))
    def run(run_at: Any, retry: str) -> None:
        _request(fuzz_server, session, "POST", "/tasques", _task(run_at=run_at, repeat={"interval": retry}))

    run()


_BODY_NAMES = [
    ("POST", "/tasques", lambda n: _task(queue=n)),
    ("POST", "/tasques", lambda n: _task(kind=n)),
    ("POST", "/tasques", lambda n: _task(id=n)),
    ("POST", "/tasques/bulk", lambda n: {"tasks": [_task(queue=n, id=n)]}),
    ("POST", "/tasques/claims", lambda n: {"queues": [n], "block_for": "0s"}),
    ("POST", "/recurring_tasques", lambda n: {"id": n, "schedule_expression": "@daily", "task_definition": _task()}),
    ("POST", "/recurring_tasques", lambda n: {"id": "r2", "schedule_expression": n, "task_definition": _task()}),
    ("PUT", "/recurring_tasques/r", lambda n: {"task_definition": _task(queue=n, kind=n)}),
]


@pytest.mark.parametrize(("method", "path", "build"), _BODY_NAMES)
def test_extreme_names_in_bodies_never_5xx(
    fuzz_server: ServerProcess, session: requests.Session, method: str, path: str, build: Any
) -> None:
    @_HYPOTHESIS
    @given(name=NAMES)
    def run(name: str) -> None:
        _request(fuzz_server, session, method, path, build(name))

    run()


_PATHS = [
    ("GET", "/tasques/{n}/{n}"),
    ("GET", "/tasques/timeline/{n}/x"),
    ("PUT", "/tasques/done/q/{n}"),
    ("PUT", "/tasques/failed/{n}/x"),
    ("PUT", "/tasques/reports/{n}/x"),
    ("DELETE", "/tasques/claims/q/{n}"),
    ("PUT", "/tasques/cancel/{n}/x"),
    ("PUT", "/tasques/run-now/q/{n}"),
    ("GET", "/queues/{n}/settings"),
    ("PUT", "/queues/{n}/pause"),
    ("PUT", "/queues/{n}/resume"),
    ("GET", "/recurring_tasques/{n}"),
    ("DELETE", "/recurring_tasques/{n}"),
    ("GET", "/tasques?queue={n}&kind={n}&recurring_task_id={n}&limit={n}&cursor={n}&state={n}"),
]


@pytest.mark.parametrize(("method", "template"), _PATHS)
def test_extreme_names_in_paths_and_filters_never_5xx(
    fuzz_server: ServerProcess, session: requests.Session, method: str, template: str
) -> None:
    @_HYPOTHESIS
    @given(name=NAMES)
    def run(name: str) -> None:
        quoted = quote(name, safe="")
        if not quoted:
            quoted = "%20"  # an empty path segment would be another route
        _request(fuzz_server, session, method, template.replace("{n}", quoted))

    run()

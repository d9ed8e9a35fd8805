"""The ciphers example (`example_ciphers/`): cipher vectors in Python and Go, and the whole demo end to end.

* The shared vectors (`example_ciphers/vectors.json`, expected values from independent references) against the
  Python implementation, and against the Go one through `worker_go -vectors`: the two must agree exactly,
  error messages included.
* End to end on each store: a real `tasques serve`, the producer web app, the Python worker (through
  `tasques worker --handlers example_ciphers.worker_py`) and the Go worker (built on the oapi-codegen client)
  as processes; every cipher is requested through the producer for each worker choice, and `GET /api/results`
  must show each task done with the right ciphertext from the right worker language.
* `example_ciphers/run` (what `make example` runs) starts everything, and SIGINT stops everything.

The Go worker is built at most once per session (and reused across sessions while nothing changed); without Go
these tests fail saying so, they are never skipped.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pytest_aiohttp import AiohttpClient

from example_ciphers import build_go
from example_ciphers.ciphers import CipherError, encode, parse_request
from example_ciphers.producer import create_app
from tests.conftest import REPO
from tests.process import ServerProcess, free_port

EXAMPLE = REPO / "example_ciphers"
VECTORS: list[dict[str, Any]] = json.loads((EXAMPLE / "vectors.json").read_text())["vectors"]
PY_WORKER_ID = "python-e2e"
GO_WORKER_ID = "go-e2e"
WORKER_IDS = {"python": PY_WORKER_ID, "go": GO_WORKER_ID}
QUEUES = {"python": "ciphers-py", "go": "ciphers-go", "any": "ciphers"}


def _expected(vector: dict[str, Any]) -> dict[str, str]:
    return {k: vector[k] for k in ("ciphertext", "error") if k in vector}


def _vector_id(vector: dict[str, Any]) -> str:
    return f"{vector['kind']}-{json.dumps(vector['args'], ensure_ascii=False)[:40]}"


# -- the ciphers --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("vector", VECTORS, ids=[_vector_id(v) for v in VECTORS])
def test_python_ciphers_give_the_vectors(vector: dict[str, Any]) -> None:
    try:
        got = {"ciphertext": encode(vector["kind"], vector["args"])}
    except CipherError as e:
        got = {"error": str(e)}
    assert got == _expected(vector)


def test_the_vectors_cover_every_kind_and_its_errors() -> None:
    kinds = {v["kind"] for v in VECTORS if "ciphertext" in v}
    assert kinds == {"rot13", "base64", "caesar", "vigenere", "md5", "sha256"}
    assert {v["kind"] for v in VECTORS if "error" in v} >= kinds
    assert any(not v["args"]["plaintext"].isascii() for v in VECTORS if "ciphertext" in v)


class GoWorker:
    """Builds the Go worker on first use, once per session (a failure too), on `scripts/gen-clients go`'s client.

    A missing Go or a failed build fails the test that needs the worker (not an error in a fixture, never a skip).
    """

    def __init__(self) -> None:
        self._built: Path | str | None = None

    def binary(self) -> Path:
        if self._built is None:
            try:
                self._built = build_go.build()
            except build_go.GoMissing as e:
                self._built = f"Go is required for the ciphers example's Go worker, and is missing: {e}"
            except build_go.BuildError as e:
                self._built = f"The ciphers example's Go worker could not be built: {e}"
        if isinstance(self._built, str):
            pytest.fail(self._built, pytrace=False)
        return self._built


@pytest.fixture(scope="session")
def go_worker() -> GoWorker:
    return GoWorker()


@pytest.mark.timeout(900)  # a cold machine installs oapi-codegen first
def test_go_ciphers_give_the_same_vectors(go_worker: GoWorker) -> None:
    proc = subprocess.run(
        [str(go_worker.binary()), "-vectors", str(EXAMPLE / "vectors.json")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    outputs = json.loads(proc.stdout)
    assert len(outputs) == len(VECTORS)
    mismatches = [
        f"{v['kind']} {json.dumps(v['args'], ensure_ascii=False)}: Go gave {got}, expected {_expected(v)}"
        for v, got in zip(VECTORS, outputs, strict=True)
        if got != _expected(v)
    ]
    assert not mismatches, "\n".join(mismatches)


def test_the_go_worker_pins_the_runtime_the_generated_client_is_built_with() -> None:
    def requires(go_mod: Path) -> dict[str, str]:
        return dict(re.findall(r"^\s*(?:require\s+)?([\w./-]+\.[\w./-]+)\s+(v\S+)", go_mod.read_text(), re.M))

    example, smoke = requires(EXAMPLE / "worker_go" / "go.mod"), requires(REPO / "clients" / "go" / "go.mod")
    assert example["github.com/oapi-codegen/runtime"] == smoke["github.com/oapi-codegen/runtime"]
    assert example == smoke


@pytest.mark.parametrize(
    ("cipher", "key", "kind", "param"),
    [
        ("rot13", None, "rot13", {}),
        ("caesar-3", None, "caesar", {"shift": 3}),
        ("Caesar-29", None, "caesar", {"shift": 29}),
        ("caesar--5", None, "caesar", {"shift": -5}),
        ("vigenere", "LEMON", "vigenere", {"key": "LEMON"}),
        ("Vigenère", "lemon", "vigenere", {"key": "lemon"}),
        ("sha256", None, "sha256", {}),
    ],
)
def test_the_producer_turns_requests_into_tasks(cipher: str, key: str | None, kind: str, param: dict[str, Any]) -> None:
    req = parse_request(cipher, "Attack at dawn!", key)
    assert (req.kind, req.args) == (kind, {"plaintext": "Attack at dawn!", **param})


@pytest.mark.parametrize(
    ("cipher", "plaintext", "key", "problem"),
    [
        ("rot1", "x", None, "cipher must be one of"),
        ("caesar", "x", None, "cipher must be one of"),
        ("caesar-", "x", None, "cipher must be one of"),
        ("caesar-2000000", "x", None, "args.shift must be a whole number"),
        ("vigenere", "x", None, "args.key must be 1 to 100 ASCII letters"),
        ("vigenere", "x", "clé", "args.key must be 1 to 100 ASCII letters"),
        ("md5", "", None, "plaintext must be a non-empty string"),
        ("md5", "x" * 10_001, None, "plaintext must be at most 10000 characters"),
        ("md5", "\ud800", None, "args.plaintext must be valid Unicode"),
        (None, "x", None, "cipher must be a string"),
    ],
)
def test_the_producer_rejects_invalid_requests(
    cipher: str | None, plaintext: str, key: str | None, problem: str
) -> None:
    with pytest.raises(CipherError, match=re.escape(problem)):
        parse_request(cipher, plaintext, key)


async def test_the_producer_answers_502_while_tasques_is_unreachable(aiohttp_client: AiohttpClient) -> None:
    client = await aiohttp_client(create_app(f"http://127.0.0.1:{free_port()}"))  # nothing listens there
    for method, path, body in (
        ("POST", "/api/encode", {"plaintext": "x", "cipher": "md5"}),
        ("GET", "/api/results", None),
    ):
        resp = await client.request(method, path, json=body)
        assert resp.status == 502
        assert "Tasques is unreachable" in (await resp.json())["message"]
    resp = await client.post("/api/encode", json={"plaintext": "x", "cipher": "rot1"})  # checked before Tasques
    assert resp.status == 400


# -- end to end ---------------------------------------------------------------------------------------------------


class Processes:
    """Real processes logging to files; all are stopped (SIGTERM, then SIGKILL) at the end of the test."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, cmd: list[str]) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TASQUES_")}
        with (self.tmp_path / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        self.started.append((name, proc))
        return proc

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}:\n{path.read_text(errors='replace')[-3000:]}"
            for path in sorted(self.tmp_path.glob("*.log"))
        )

    def stop_all(self) -> dict[str, int]:
        """Stop every process (SIGTERM, all at once); their exit codes."""
        for _, proc in self.started:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes: dict[str, int] = {}
        for name, proc in self.started:
            try:
                codes[name] = proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[name] = proc.wait()
        return codes


def _http(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _get_text(url: str) -> tuple[int, str, str]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), resp.read().decode()


def _wait_for(what: str, check: Callable[[], bool], timeout: float, diagnostics: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    pytest.fail(f"{what} within {timeout}s\n{diagnostics()}", pytrace=False)


def _answers(url: str) -> bool:
    try:
        return _get_text(url)[0] == 200
    except OSError:
        return False


@pytest.fixture
def server(store_server: ServerProcess) -> ServerProcess:
    return store_server


PLAINTEXTS = ("Attack at dawn!", "héllo wörld ✓ 日本 🚀")
CIPHERS = (
    ("rot13", None),
    ("base64", None),
    ("caesar-3", None),
    ("caesar--29", None),
    ("vigenere", "LEMON"),
    ("md5", None),
    ("sha256", None),
)


@pytest.mark.slow
@pytest.mark.timeout(900)  # a cold machine installs oapi-codegen first (go_worker)
def test_end_to_end(server: ServerProcess, go_worker: GoWorker, tmp_path: Path) -> None:
    go_binary = go_worker.binary()
    procs = Processes(tmp_path / "procs")
    procs.tmp_path.mkdir()
    producer_port = free_port()
    producer_url = f"http://127.0.0.1:{producer_port}"
    try:
        procs.start(
            "producer",
            [
                sys.executable,
                "-m",
                "example_ciphers.producer",
                "--tasques",
                server.url,
                "--port",
                str(producer_port),
            ],
        )
        procs.start(
            "worker-py",
            [sys.executable, "-m", "tasques.cli", "worker", "--server", server.url, "--handlers", "example_ciphers.worker_py",
             "--queue", "ciphers-py", "--queue", "ciphers", "--worker-id", PY_WORKER_ID, "--block-for", "1s"],
        )  # fmt: skip
        procs.start(
            "worker-go", [str(go_binary), "-server", server.url, "-worker-id", GO_WORKER_ID, "-block-for", "1s"]
        )
        _wait_for("the producer did not answer", lambda: _answers(f"{producer_url}/"), 30, procs.logs)

        # The page renders, with its form.
        status, content_type, page = _get_text(f"{producer_url}/")
        assert status == 200
        assert content_type.startswith("text/html")
        assert '<form id="encode-form"' in page
        for fragment in ('name="plaintext"', 'value="caesar"', 'value="vigenere"', 'value="go"', "/api/results"):
            assert fragment in page
        assert "{{" not in page
        assert f"{server.url}/swagger" in page

        # Invalid requests are refused before anything is enqueued.
        for bad in (
            {"plaintext": "x", "cipher": "rot1"},
            {"plaintext": "x", "cipher": "vigenere", "key": "not ok"},
            {"plaintext": "x", "cipher": "md5", "worker": "cobol"},
            {"plaintext": "", "cipher": "md5"},
            ["not", "an", "object"],
        ):
            status, body = _http("POST", f"{producer_url}/api/encode", bad)
            assert status == 400, (bad, body)
            assert body["message"]

        expected: dict[str, tuple[str, str, str]] = {}  # task id -> (requested worker, cipher shown, ciphertext)
        for worker in ("python", "go", "any"):
            for cipher, key in CIPHERS:
                for plaintext in PLAINTEXTS:
                    status, body = _http(
                        "POST",
                        f"{producer_url}/api/encode",
                        {"plaintext": plaintext, "cipher": cipher, "key": key, "worker": worker},
                    )
                    assert status == 202, body
                    assert body["queue"] == QUEUES[worker]
                    req = parse_request(cipher, plaintext, key)
                    expected[body["id"]] = (worker, req.cipher, encode(req.kind, req.args))

        results: dict[str, dict[str, Any]] = {}

        def all_finished() -> bool:
            status, body = _http("GET", f"{producer_url}/api/results?limit=1000")
            assert status == 200, body
            results.clear()
            results.update({r["id"]: r for r in body["results"]})
            failed = [r for r in results.values() if r["state"] in ("failed", "dead")]
            assert not failed, f"tasks failed: {failed}\n{procs.logs()}"
            return all(results.get(task_id, {}).get("state") == "done" for task_id in expected)

        started = time.monotonic()
        _wait_for(
            "not every task was done",
            all_finished,
            30,
            lambda: f"{[r for r in results.values() if r['state'] != 'done']}\n{procs.logs()}",
        )
        print(f"{len(expected)} tasks done {time.monotonic() - started:.1f}s after the last was enqueued")

        assert set(results) == set(expected)
        for task_id, (requested, cipher, ciphertext) in expected.items():
            r = results[task_id]
            assert (r["cipher"], r["ciphertext"], r["requested"]) == (cipher, ciphertext, requested), r
            assert r["worker"] == requested if requested != "any" else r["worker"] in WORKER_IDS, r
            assert r["worker_id"] == WORKER_IDS[r["worker"]], r
            assert r["error"] is None
        # Newest first, as the page shows them.
        times = [r["enqueued_at"] for r in results.values()]
        assert times == sorted(times, reverse=True)
    finally:
        codes = procs.stop_all()
    assert codes == {"producer": 0, "worker-py": 0, "worker-go": 0}, procs.logs()


# -- example_ciphers/run ------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_run_script_starts_everything_and_sigint_stops_it(go_worker: GoWorker, tmp_path: Path) -> None:
    go_worker.binary()  # built here, so that a missing Go fails with its own message
    server_port, producer_port = free_port(), free_port()
    state = tmp_path / "state"
    out_path = tmp_path / "run.out"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TASQUES_")}, "PYTHON": sys.executable}
    with out_path.open("wb") as out:
        run = subprocess.Popen(
            [str(EXAMPLE / "run"), "--server-port", str(server_port), "--producer-port", str(producer_port),
             "--state-dir", str(state)],
            env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def output() -> str:
        logs = "\n".join(f"--- {p.name}:\n{p.read_text(errors='replace')[-2000:]}" for p in sorted(state.glob("*.log")))
        return f"run printed:\n{out_path.read_text(errors='replace')}\n{logs}"

    producer_url = f"http://127.0.0.1:{producer_port}"
    try:
        _wait_for("run did not say it was running", lambda: "Press Ctrl-C" in out_path.read_text(), 60, output)
        printed = out_path.read_text()
        assert f"{producer_url}/" in printed
        assert f"http://127.0.0.1:{server_port}/" in printed

        ids = {}
        for worker in ("python", "go"):
            status, body = _http(
                "POST", f"{producer_url}/api/encode", {"plaintext": "abc", "cipher": "caesar-1", "worker": worker}
            )
            assert status == 202, body
            ids[body["id"]] = worker

        def done() -> bool:
            results = {r["id"]: r for r in _http("GET", f"{producer_url}/api/results")[1]["results"]}
            return all(
                results.get(i, {}).get("worker") == w and results[i]["ciphertext"] == "bcd" for i, w in ids.items()
            )

        _wait_for("the tasks were not done", done, 20, output)

        run.send_signal(signal.SIGINT)
        try:
            code = run.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"run did not stop within 30s of SIGINT\n{output()}", pytrace=False)
        assert code == 0, output()
        assert "example_ciphers: stopped" in out_path.read_text()
        assert not _answers(f"{producer_url}/")
        assert not _answers(f"http://127.0.0.1:{server_port}/health")
        assert "stopped" in (state / "worker-go.log").read_text()
        assert "stopped" in (state / "worker-py.log").read_text()
    finally:
        if run.poll() is None:
            run.kill()  # its processes get SIGTERM from the kernel when it dies (PR_SET_PDEATHSIG)
            run.wait()

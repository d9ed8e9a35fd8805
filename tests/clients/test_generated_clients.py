"""Clients generated from openapi.yaml by third-party generators drive a live server on each store.

`scripts/gen-clients` generates and builds each client (Python: openapi-python-client; Go: oapi-codegen;
TypeScript: openapi-typescript + openapi-fetch) at most once per session, into a cache dir keyed by the hash of
openapi.yaml and clients/. Each client's smoke program does create -> claim -> report -> done of one task, then
of two more through the batch endpoints (claimed together, one `POST /tasques/reports`, one `POST /tasques/done`
that also names a missing task, checking each item's status); the test then reads the tasks back over plain HTTP. A generator warning about the document fails the test, and so does a
missing Go or Node toolchain: these tests are never skipped for want of one.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO
from tests.process import ServerProcess

GEN_CLIENTS = REPO / "scripts" / "gen-clients"
LANGUAGES = ("python", "go", "typescript")
ARGS = {"greeting": "hello", "n": 1}  # what every smoke client creates its task with
PROGRESS = {"progress": 50}  # and reports


def batch_result(item: int, result: Any) -> dict[str, Any]:
    """What a smoke client finishes its batch task `item` (0, 1) with, given the result it was passed."""
    return {"item": item, "result": result}


class GeneratedClients:
    """Builds each language's smoke client on first use, once per session; remembers failures too."""

    def __init__(self) -> None:
        self._built: dict[str, Path | str] = {}

    def smoke(self, language: str) -> Path:
        if language not in self._built:
            self._built[language] = self._build(language)
        built = self._built[language]
        if isinstance(built, str):
            pytest.fail(built, pytrace=False)
        return built

    @staticmethod
    def _build(language: str) -> Path | str:
        try:
            proc = _run_gen_clients(language)
        except subprocess.TimeoutExpired as e:
            return f"`scripts/gen-clients {language}` timed out: {e}"
        if proc.returncode != 0:
            what = "a toolchain is missing" if proc.returncode == 3 else "generating or building it failed"
            return f"The {language} client could not be built ({what}):\n{proc.stderr.strip()}"
        lang, _, directory = proc.stdout.strip().splitlines()[-1].partition(" ")
        assert lang == language, proc.stdout
        return Path(directory) / "smoke"


@pytest.fixture(scope="session")
def generated_clients() -> GeneratedClients:
    return GeneratedClients()


@pytest.fixture
def server(store_server: ServerProcess) -> ServerProcess:
    return store_server


def _run_gen_clients(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(GEN_CLIENTS), *args], capture_output=True, text=True, timeout=900, check=False
    )


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.status == 200, url
        return json.loads(resp.read())


@pytest.mark.slow
@pytest.mark.timeout(900)  # the first run installs the generators
@pytest.mark.parametrize("language", LANGUAGES)
def test_generated_client_create_claim_report_done(
    language: str, server: ServerProcess, generated_clients: GeneratedClients
) -> None:
    smoke = generated_clients.smoke(language)
    queue = f"clients-{language}"
    worker = f"{language}-worker-{uuid.uuid4().hex[:8]}"
    result = {"client": language, "answer": 42, "nested": {"ok": True, "items": [1, "two", None]}, "text": "é ✓"}

    proc = subprocess.run(
        [str(smoke), server.url, queue, worker, json.dumps(result)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, (
        f"the {language} client failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}\n"
        f"server log:\n{server.log_tail()}"
    )
    printed = json.loads(proc.stdout.strip().splitlines()[-1])
    assert printed["queue"] == queue

    task = _get_json(f"{server.url}/tasques/{queue}/{printed['id']}")
    assert task["state"] == "done"
    assert task["kind"] == f"{language}Smoke"
    assert task["args"] == ARGS
    assert task["last_claimed"]["worker_id"] == worker
    assert task["last_claimed"]["last_report"]["data"] == PROGRESS
    assert task["last_claimed"]["result"]["success"] == result
    assert task["last_claimed"]["result"].get("failure") is None

    assert len(printed["batch_ids"]) == 2
    assert len({printed["id"], *printed["batch_ids"]}) == 3
    for item, task_id in enumerate(printed["batch_ids"]):
        task = _get_json(f"{server.url}/tasques/{queue}/{task_id}")
        assert task["state"] == "done"
        assert task["kind"] == f"{language}Smoke"
        assert task["args"] == ARGS
        assert task["last_claimed"]["worker_id"] == worker
        assert task["last_claimed"]["last_report"]["data"] == PROGRESS
        assert task["last_claimed"]["result"]["success"] == batch_result(item, result)
        assert task["last_claimed"]["result"].get("failure") is None


def _unsupported_request_type(doc: dict[str, Any]) -> None:
    doc["paths"]["/tasques"]["post"]["requestBody"]["content"] = {"application/xml": {"schema": {"type": "string"}}}


def _undescribed_tag(doc: dict[str, Any]) -> None:
    doc["tags"][0].pop("description")


# A flaw each generator only warns about (it still generates). oapi-codegen has no such warnings: it fails outright
# on a document it cannot handle, and gen-clients treats any output of it as a warning all the same.
FLAWS = {"python": (_unsupported_request_type, "Unsupported content type"), "typescript": (_undescribed_tag, "Tag")}


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("language", sorted(FLAWS))
def test_a_generator_warning_fails_the_build(
    language: str, tmp_path: Path, generated_clients: GeneratedClients
) -> None:
    generated_clients.smoke(language)  # the generator is installed and the real document is clean
    flaw, warning = FLAWS[language]
    doc = yaml.safe_load((REPO / "openapi.yaml").read_text())
    flaw(doc)
    spec = tmp_path / "flawed.yaml"
    spec.write_text(yaml.safe_dump(doc, sort_keys=False))

    proc = _run_gen_clients("--spec", str(spec), language)

    assert proc.returncode == 1, proc.stderr
    assert "(a generator warning is a bug in the document)" in proc.stderr
    assert warning in proc.stderr

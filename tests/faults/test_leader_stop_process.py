"""SIGTERM to a real `tasques serve` on Elasticsearch, during and after a store outage: the process exits
within `server.shutdown_grace`, and the leader lock is released first and never taken again. The outage is
a pausable proxy between the server and the shared node (the node itself is never paused)."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tasques.leader.election import LOCK_NAME
from tests.faults.proxy import PausableProxy
from tests.process import ServerProcess, delete_es_prefix, es_server_settings

pytestmark = [pytest.mark.slow, pytest.mark.elasticsearch]

GRACE = 3.0
SLACK = 1.5  # interpreter start-up is not the point; a hang is many times this
LEASE = timedelta(seconds=2)
FAST_STOP = {
    "TASQUES_SERVER_SHUTDOWN_GRACE": "3s",
    "TASQUES_LEADER_LEASE": "2s",
    "TASQUES_LEADER_RENEW_EVERY": "500ms",
    # The store's own request timeout stays at 30 s: far longer than the grace, as in the report.
}


@pytest.fixture
def proxy(elasticsearch_url: str) -> Iterator[PausableProxy]:
    with PausableProxy(elasticsearch_url) as p:
        yield p


@pytest.fixture
def server(
    proxy: PausableProxy, elasticsearch_url: str, es_index_prefix: str, tmp_path: Path
) -> Iterator[ServerProcess]:
    process = ServerProcess({**es_server_settings(proxy.url, es_index_prefix), **FAST_STOP}, tmp_path / "server.log")
    try:
        yield process.start()
    finally:
        process.kill()
        proxy.resume()
        asyncio.run(delete_es_prefix(elasticsearch_url, es_index_prefix))


def lock_doc(es_url: str, prefix: str) -> dict[str, Any] | None:
    """The leader lock as the node has it (read directly, not through the proxy)."""
    try:
        with urllib.request.urlopen(f"{es_url}/{prefix}-locks/_doc/{LOCK_NAME}", timeout=10) as resp:
            source: dict[str, Any] = json.loads(resp.read())["_source"]
            return source
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return None
        raise


def live_lock(es_url: str, prefix: str) -> bool:
    doc = lock_doc(es_url, prefix)
    return doc is not None and datetime.fromisoformat(doc["expires_at"]) > datetime.now(UTC)


def wait_until(condition: Callable[[], bool], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def in_background(server: ServerProcess, path: str, body: dict[str, Any]) -> threading.Event:
    """POST in a thread; the returned event is set when the request ends, answered or not."""
    ended = threading.Event()

    def post() -> None:
        request = urllib.request.Request(
            f"{server.url}{path}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "X-TASQUES-WORKER-ID": "w1"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as resp:
                resp.read()
        except OSError:
            pass
        finally:
            ended.set()

    threading.Thread(target=post, daemon=True).start()
    return ended


def sigterm_and_time_exit(server: ServerProcess) -> tuple[int | None, float]:
    started = time.monotonic()
    server.send_signal(signal.SIGTERM)
    code = server.wait_exit(GRACE + SLACK)
    return code, time.monotonic() - started


def test_sigterm_during_a_store_outage_exits_within_the_grace(
    server: ServerProcess, proxy: PausableProxy, elasticsearch_url: str, es_index_prefix: str
) -> None:
    wait_until(lambda: live_lock(elasticsearch_url, es_index_prefix))
    proxy.pause()
    in_background(server, "/tasques", {"queue": "q", "kind": "k"})  # hangs in the store: the drain waits on it
    time.sleep(1.0)  # lock renewals and job passes are hanging in the store by now
    stopped_at = datetime.now(UTC)
    code, took = sigterm_and_time_exit(server)
    assert code is not None, f"still running {took:.1f}s after SIGTERM (grace {GRACE}s):\n{server.log_tail()}"
    assert "tasques stopping" in server.log_tail()

    # Once the node answers again, whatever the proxy held is delivered (as a paused node would process it):
    # the lock may still show a renewal sent before the stop, never one sent after.
    proxy.resume()
    time.sleep(0.5)
    doc = lock_doc(elasticsearch_url, es_index_prefix)
    if doc is not None:
        assert datetime.fromisoformat(doc["expires_at"]) <= stopped_at + LEASE


def test_sigterm_after_a_store_outage_releases_the_lock_first_and_exits_within_the_grace(
    server: ServerProcess, proxy: PausableProxy, elasticsearch_url: str, es_index_prefix: str
) -> None:
    wait_until(lambda: live_lock(elasticsearch_url, es_index_prefix))
    proxy.pause()
    time.sleep(LEASE.total_seconds() + 1)  # the lease runs out during the outage
    proxy.resume()
    wait_until(lambda: live_lock(elasticsearch_url, es_index_prefix))  # leader again once the store is back
    # A long-poll claim in flight: the drain waits on it, and the leader must not go on renewing meanwhile.
    claim_ended = in_background(server, "/tasques/claims", {"queues": ["empty"], "amount": 1, "block_for": "2500ms"})
    time.sleep(0.3)
    assert not claim_ended.is_set()
    server.send_signal(signal.SIGTERM)
    started = time.monotonic()
    released_while_draining = False
    while server.wait_exit(0.02) is None and time.monotonic() - started < GRACE + SLACK:
        if lock_doc(elasticsearch_url, es_index_prefix) is None and not claim_ended.is_set():
            released_while_draining = True
    took = time.monotonic() - started
    assert server.wait_exit(0) is not None, f"still running {took:.1f}s after SIGTERM:\n{server.log_tail()}"
    assert lock_doc(elasticsearch_url, es_index_prefix) is None  # released, and not taken again
    assert released_while_draining, "the lock was held until the requests had drained"
    log = server.log_tail(100_000)
    assert "leader lock acquired" not in log[log.index("tasques stopping") :]


def test_a_second_sigterm_ends_a_stop_that_waits_on_the_store(
    proxy: PausableProxy, elasticsearch_url: str, es_index_prefix: str, tmp_path: Path
) -> None:
    settings = {**es_server_settings(proxy.url, es_index_prefix), **FAST_STOP, "TASQUES_SERVER_SHUTDOWN_GRACE": "60s"}
    server = ServerProcess(settings, tmp_path / "server.log").start()
    try:
        wait_until(lambda: live_lock(elasticsearch_url, es_index_prefix))
        # The node has the lock before the server has heard so: wait until the server knows it leads.
        wait_until(lambda: "leader lock acquired" in server.log_tail(100_000))
        proxy.pause()
        time.sleep(0.5)
        server.send_signal(signal.SIGTERM)
        assert server.wait_exit(1.0) is None, server.log_tail()  # stopping, waiting on the store within its 60 s grace
        server.send_signal(signal.SIGTERM)
        code = server.wait_exit(SLACK)
        assert code == 1, f"a second SIGTERM did not end the stop:\n{server.log_tail()}"
        assert "second SIGTERM while stopping" in server.log_tail()
    finally:
        server.kill()
        proxy.resume()
        asyncio.run(delete_es_prefix(elasticsearch_url, es_index_prefix))

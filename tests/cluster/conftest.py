"""A three-node Elasticsearch cluster for the node-failure tests, started once per module and always
stopped (continued first). A cluster that cannot start skips locally and fails in CI."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.nodes import Cluster, Distribution
from tests.conftest import IN_CI
from tests.process import cache_root


def _base() -> Path:
    # Not under /tmp/pytest-*: as root the ES user must reach it, and /root is mode 700.
    return cache_root() / f"cluster-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def es_cluster() -> Iterator[Cluster]:
    cluster: Cluster | None = None
    try:
        try:
            cluster = Cluster(Distribution.fetch(), _base())
            cluster.start_all()
        except RuntimeError as e:
            reason = f"three-node Elasticsearch did not start: {e}"
            if IN_CI:
                pytest.fail(reason, pytrace=False)
            pytest.skip(reason)
        yield cluster
    finally:
        if cluster is not None:
            cluster.close()

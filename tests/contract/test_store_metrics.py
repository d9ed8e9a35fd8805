"""The metrics store hook on each real store: every call timed; outages and unexpected errors counted, the
store's answers (NotFound, AlreadyExists, VersionConflict) not."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tasques.config import MetricsConfig
from tasques.domain.errors import AlreadyExists, NotFound, StoreUnavailable, VersionConflict
from tasques.observe.metrics import Metrics
from tasques.observe.store import observed
from tasques.service.clock import ManualClock
from tasques.store.base import Store
from tasques.store.elasticsearch.store import ElasticsearchStore
from tests.contract import T0, make_task
from tests.contract.conftest import es_settings


async def samples(metrics: Metrics, name: str) -> dict[str, float]:
    """operation -> value of the samples named `name`."""
    text = (await metrics.render()).decode()
    return {
        s.labels["operation"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


async def test_answers_are_timed_and_not_errors(store: Store) -> None:
    metrics = Metrics(MetricsConfig(), store.kind, ManualClock(T0))
    watched = observed(store, [metrics.store_hook])
    task = await watched.insert_task(make_task("q", "a"))
    with pytest.raises(AlreadyExists):
        await watched.insert_task(make_task("q", "a"))
    with pytest.raises(NotFound):
        await watched.get_task("q", "missing")
    await watched.update_task(task.claimed("w1", T0, "c1"))
    with pytest.raises(VersionConflict):
        await watched.update_task(task.claimed("w2", T0, "c2"))  # the version it names is stale now
    timed = await samples(metrics, "tasques_store_operation_duration_seconds_count")
    assert timed == {"insert_task": 2, "get_task": 1, "update_task": 2}
    assert await samples(metrics, "tasques_store_errors_total") == {"insert_task": 0, "get_task": 0, "update_task": 0}


async def test_an_unreachable_store_counts_errors(store: Store) -> None:
    """SQLite: a closed store fails every call (an unexpected error); Elasticsearch: nothing listens (unavailable)."""
    broken: Store = store
    error: type[Exception] = RuntimeError
    if store.kind == "sqlite":
        await store.close()
    else:
        broken = ElasticsearchStore.from_config(es_settings("http://127.0.0.1:1", "nothing-listens"))
        error = StoreUnavailable
    metrics = Metrics(MetricsConfig(), store.kind, ManualClock(T0))
    watched = observed(broken, [metrics.store_hook])
    for _ in range(2):
        with pytest.raises(error):
            await watched.get_task("q", "a")
    assert await samples(metrics, "tasques_store_errors_total") == {"get_task": 2}
    assert await samples(metrics, "tasques_store_operation_duration_seconds_count") == {"get_task": 2}
    if store.kind == "elasticsearch":
        await broken.close()

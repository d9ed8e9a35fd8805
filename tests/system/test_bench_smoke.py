"""The benchmark's raw SQLite limit still runs against the current schema (bench/ is not in `make test`
otherwise, so a schema change could silently break `make bench`)."""

from __future__ import annotations

from pathlib import Path

from bench.raw_limits import _raw_sqlite
from tasques.domain.task import Task
from tasques.store.sqlite import SqliteStore


async def test_raw_sqlite_limit_writes_rows_the_store_can_read(tmp_path: Path) -> None:
    db = tmp_path / "raw.db"
    elapsed, done = _raw_sqlite(db, 1_500)
    assert done == 1_500
    assert elapsed > 0
    store = SqliteStore(str(db))
    await store.open()
    try:
        task = await store.get_task("raw", "t7")
    finally:
        await store.close()
    assert isinstance(task, Task)
    assert task.state.value == "done"

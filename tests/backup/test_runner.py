"""Backups and restores on real SQLite files, in this process (no server): names, retention, failures."""

from __future__ import annotations

import asyncio
import gzip
import sqlite3
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from tasques.backup.local import LocalDirectory
from tasques.backup.restore import RestoreError, restore
from tasques.backup.runner import BackupError, BackupRunner, backup_name, parse_backup_name
from tasques.domain.errors import StoreUnavailable
from tasques.store.sqlite.lock import try_exclusive
from tasques.store.sqlite.store import SqliteStore
from tests.backup.conftest import garble, garble_backup, make_database

T0 = datetime(2026, 12, 3, 14, 25, 0, tzinfo=UTC)


def test_names_carry_the_utc_second_and_parse_back() -> None:
    assert backup_name(T0) == "tasques-20261203T142500Z.db.gz"
    local = T0.astimezone(timezone(timedelta(hours=5)))
    assert backup_name(local) == "tasques-20261203T142500Z.db.gz"
    assert parse_backup_name(backup_name(T0)) == T0
    for other in ("tasques-20261203T142500Z.db", "x-20261203T142500Z.db.gz", "tasques-20261399T142500Z.db.gz",
                  ".tasques-20261203T142500Z.db.gz.1234.partial", "../tasques-20261203T142500Z.db.gz"):  # fmt: skip
        assert parse_backup_name(other) is None, other
    with pytest.raises(ValueError, match="aware"):
        backup_name(datetime(2026, 1, 1))  # naive on purpose


def test_a_backup_restores_to_the_same_rows_and_old_ones_are_pruned(tmp_path: Path) -> None:
    db = tmp_path / "tasques.db"
    make_database(db)
    backups = LocalDirectory(tmp_path / "backups")
    runner = BackupRunner(str(db), backups, keep=3)
    (tmp_path / "backups").mkdir()
    (tmp_path / "backups" / "notes.txt").write_text("not ours")
    records = [runner.take(T0 + timedelta(hours=h)) for h in range(5)]
    assert sorted(backups.names()) == [r.name for r in records[2:]]
    assert (tmp_path / "backups" / "notes.txt").exists()  # pruning deletes only backups
    assert all(r.size == (tmp_path / "backups" / r.name).stat().st_size for r in records[2:])
    assert not list(tmp_path.glob(".tasques-backup-*"))  # the work files are gone

    target = tmp_path / "restored.db"
    assert restore(str(target), records[-1].name, backups) is None  # nothing was replaced
    rows = sqlite3.connect(target).execute("SELECT count(*), max(n) FROM filler").fetchone()
    assert rows == (2000, 1999)


def test_a_damaged_database_is_not_backed_up(tmp_path: Path) -> None:
    db = tmp_path / "tasques.db"
    make_database(db)
    garble(db)
    backups = LocalDirectory(tmp_path / "backups")
    with pytest.raises(BackupError, match="failed PRAGMA integrity_check"):
        BackupRunner(str(db), backups, keep=3).take(T0)
    assert backups.names() == []
    with pytest.raises(BackupError, match="no database"):
        BackupRunner(str(tmp_path / "missing.db"), backups, keep=3).take(T0)
    assert not (tmp_path / "missing.db").exists()  # the copy never creates a database


def test_a_write_that_fails_midway_leaves_no_backup_visible(tmp_path: Path) -> None:
    """A real file-system failure: the process may not write files past 64 KiB (RLIMIT_FSIZE, EFBIG)."""
    db = tmp_path / "tasques.db"
    make_database(db, filler_rows=20_000)
    target = tmp_path / "backups"
    runner = BackupRunner(str(db), LocalDirectory(target), keep=3)
    first = runner.take(T0)  # a good one, before the failure
    script = textwrap.dedent(f"""
        import resource, signal, sys
        from pathlib import Path
        from tasques.backup.destinations import BackupStorageError
        from tasques.backup.local import LocalDirectory
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        source = Path({str(target / first.name)!r})
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
        try:
            LocalDirectory(Path({str(target)!r})).put("tasques-20261203T152500Z.db.gz", source)
        except BackupStorageError as e:
            print(e)
            sys.exit(3)
    """)
    assert first.size > 64 * 1024
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 3, done.stderr
    assert "could not write tasques-20261203T152500Z.db.gz" in done.stdout
    assert sorted(p.name for p in target.iterdir()) == [first.name]  # no partial file left behind either
    assert LocalDirectory(target).names() == [first.name]


def test_restore_checks_the_backup_and_refuses_a_damaged_one(tmp_path: Path) -> None:
    db = tmp_path / "tasques.db"
    make_database(db)
    backups = LocalDirectory(tmp_path / "backups")
    record = BackupRunner(str(db), backups, keep=3).take(T0)
    live = tmp_path / "live.db"
    make_database(live, filler_rows=10)
    before = live.read_bytes()

    damaged = tmp_path / "damaged.db.gz"
    damaged.write_bytes((tmp_path / "backups" / record.name).read_bytes())
    garble_backup(damaged)
    with pytest.raises(RestoreError, match="failed PRAGMA integrity_check"):
        restore(str(live), str(damaged), None)
    truncated = tmp_path / "truncated.db.gz"
    truncated.write_bytes((tmp_path / "backups" / record.name).read_bytes()[:-200])
    with pytest.raises(RestoreError, match="not a complete gzip"):
        restore(str(live), str(truncated), None)
    foreign = tmp_path / "foreign.db.gz"
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    foreign.write_bytes(gzip.compress(other.read_bytes()))
    with pytest.raises(RestoreError, match="not a Tasques database"):
        restore(str(live), str(foreign), None)
    with pytest.raises(RestoreError, match="neither a file nor a backup name"):
        restore(str(live), "nonsense", backups)
    with pytest.raises(RestoreError, match=r"no backup tasques-20991203T142500Z\.db\.gz"):
        restore(str(live), "tasques-20991203T142500Z.db.gz", backups)
    assert live.read_bytes() == before
    assert not list(tmp_path.glob(".tasques-restore-*"))

    kept = restore(str(live), str(tmp_path / "backups" / record.name), None)
    assert kept == tmp_path / "live.db.before-restore"
    assert sqlite3.connect(kept).execute("SELECT count(*) FROM filler").fetchone() == (10,)
    assert sqlite3.connect(live).execute("SELECT count(*) FROM filler").fetchone() == (2000,)


async def test_restore_refuses_while_a_store_holds_the_database(tmp_path: Path) -> None:
    db = tmp_path / "tasques.db"
    await asyncio.to_thread(make_database, db)  # it runs a loop of its own
    backup = BackupRunner(str(db), LocalDirectory(tmp_path / "b"), keep=1).take(T0)
    stores = [SqliteStore(str(db)), SqliteStore(str(db))]  # two stores on one file do not refuse each other
    for store in stores:
        await store.open()
    try:
        with pytest.raises(RestoreError, match="in use by a running server"):
            restore(str(db), str(tmp_path / "b" / backup.name), None)
        await stores[0].close()
        with pytest.raises(RestoreError, match="in use"):
            restore(str(db), str(tmp_path / "b" / backup.name), None)
    finally:
        await stores[1].close()
    restore(str(db), str(tmp_path / "b" / backup.name), None)

    held = try_exclusive(str(db))  # as a restore does while it swaps the file
    assert held is not None
    try:
        with pytest.raises(StoreUnavailable, match="being restored"):
            await SqliteStore(str(db)).open()
    finally:
        held.close()

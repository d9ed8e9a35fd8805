"""Helpers of the backup tests: real SQLite databases of the Tasques schema, and ways to damage them."""

from __future__ import annotations

import asyncio
import gzip
import sqlite3
from pathlib import Path

from tasques.store.sqlite.store import SqliteStore


def make_database(path: Path, filler_rows: int = 2000) -> None:
    """A closed Tasques database (the real schema, migrated by the store) with a table of filler rows, so it has
    pages beyond the first few to damage."""

    async def create() -> None:
        store = SqliteStore(str(path))
        await store.open()
        await store.close()

    asyncio.run(create())
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE filler (n INTEGER PRIMARY KEY, text TEXT NOT NULL)")
    conn.executemany("INSERT INTO filler VALUES (?, ?)", ((i, f"row {i} " * 8) for i in range(filler_rows)))
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def garble(path: Path) -> None:
    """Overwrite the middle of the file's second half (b-tree pages of the filler table) with junk."""
    data = bytearray(path.read_bytes())
    start = len(data) * 3 // 4
    data[start : start + 4096] = b"\xa5" * 4096
    path.write_bytes(bytes(data))


def garble_backup(packed: Path) -> None:
    raw = gzip.decompress(packed.read_bytes())
    plain = packed.with_suffix(".raw")
    plain.write_bytes(raw)
    garble(plain)
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    plain.unlink()

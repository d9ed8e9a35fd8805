"""`tasques backup now` and `tasques restore` against real `tasques serve` processes on SQLite."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

from tests.process import ServerProcess


def _settings(db: Path, backups: Path) -> dict[str, str]:
    return {
        "TASQUES_STORE_KIND": "sqlite",
        "TASQUES_STORE_SQLITE_PATH": str(db),
        "TASQUES_BACKUP_LOCAL_DIRECTORY": str(backups),
        "TASQUES_BACKUP_KEEP": "5",
    }


def _cli(settings: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASQUES_") or k.startswith("TASQUES_TEST_")}
    env.update(settings)
    return subprocess.run(
        [sys.executable, "-m", "tasques.cli", *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def _create(url: str, task_id: str) -> bool:
    body = json.dumps({"queue": "load", "kind": "noop", "id": task_id}).encode()
    request = urllib.request.Request(f"{url}/tasques", body, {"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as r:
        return bool(r.status == 201)


def _get(url: str, path: str) -> int:
    try:
        with urllib.request.urlopen(f"{url}{path}", timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return e.code


def test_backup_under_write_load_then_restore_and_serve(tmp_path: Path) -> None:
    db, backups = tmp_path / "tasques.db", tmp_path / "backups"
    settings = _settings(db, backups)
    committed: list[str] = []
    stop = threading.Event()
    with ServerProcess(settings, tmp_path / "server.log") as server:

        def write() -> None:
            i = 0
            while not stop.is_set():
                if _create(server.url, f"t{i}"):
                    committed.append(f"t{i}")
                i += 1

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        while len(committed) < 200:
            stop.wait(0.02)
        before = list(committed)  # every task committed before the backup began
        taken = _cli(settings, "backup", "now")
        during = len(committed) - len(before)
        stop.set()
        writer.join(timeout=15)
        assert taken.returncode == 0, taken.stderr
        assert during > 0, "the server went on accepting writes while the backup ran"
        name = taken.stdout.strip()
        assert (backups / name).is_file()

        refused = _cli(settings, "restore", name)  # the server still holds the database
        assert refused.returncode == 2
        assert "in use by a running server" in refused.stderr

    restored_db = tmp_path / "restored.db"
    restored = _cli(_settings(restored_db, backups), "restore", name)  # by name, from the destination
    assert restored.returncode == 0, restored.stderr
    assert f"restored {restored_db} from {name}" in restored.stdout
    conn = sqlite3.connect(restored_db)
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    ids = {row[0] for row in conn.execute("SELECT id FROM tasks WHERE queue = 'load'")}
    conn.close()
    assert set(before) <= ids
    assert ids <= set(committed)

    with ServerProcess(_settings(restored_db, backups), tmp_path / "restored.log") as server:
        assert _get(server.url, f"/tasques/load/{before[0]}") == 200
        assert _get(server.url, f"/tasques/load/{before[-1]}") == 200


def test_both_commands_work_with_the_server_stopped(tmp_path: Path) -> None:
    db, backups = tmp_path / "tasques.db", tmp_path / "backups"
    settings = _settings(db, backups)
    with ServerProcess(settings, tmp_path / "server.log") as server:
        assert _create(server.url, "kept")
    taken = _cli(settings, "backup", "now")
    assert taken.returncode == 0, taken.stderr
    with ServerProcess(settings, tmp_path / "server.log") as server:
        assert _create(server.url, "after-the-backup")
    restored = _cli(settings, "restore", str(backups / taken.stdout.strip()))  # a file path this time
    assert restored.returncode == 0, restored.stderr
    assert "the replaced database is kept as" in restored.stdout
    with ServerProcess(settings, tmp_path / "server.log") as server:
        assert _get(server.url, "/tasques/load/kept") == 200
        assert _get(server.url, "/tasques/load/after-the-backup") == 404

    missing = _cli(settings, "restore", str(tmp_path / "nothing.db.gz"))
    assert missing.returncode == 2
    assert "neither a file nor a backup name" in missing.stderr
    on_es = _cli({**settings, "TASQUES_STORE_KIND": "elasticsearch"}, "backup", "now")
    assert on_es.returncode == 2
    assert "tasques snapshot" in on_es.stderr

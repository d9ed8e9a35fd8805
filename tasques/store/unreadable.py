"""Stored records a store cannot parse, shared by every store so each skips them by the same rule.

A record that cannot be parsed (corrupt, or written by another version) is counted each time it is met,
logged once, and remembered (up to `MAX_UNREADABLE` keys per process), so claims and the reaper's searches
look past it instead of being filled by it. Keys are `{kind}/{record key}`; a task's record key is
`{project}/{queue}/{id}` in every store.
"""

from __future__ import annotations

import logging

# Records remembered per process; beyond this they are still skipped and counted, only not remembered.
MAX_UNREADABLE = 10_000
_TASKS = "tasks/"


class UnreadableRecords:
    def __init__(self, log: logging.Logger) -> None:
        self._log = log
        self._keys: set[str] = set()
        self.skipped = 0

    def note(self, key: str, error: Exception) -> None:
        """One more meeting with the unreadable record `key`: counted, and logged the first time."""
        self.skipped += 1
        if key not in self._keys and len(self._keys) < MAX_UNREADABLE:
            self._keys.add(key)
            self._log.error("stored record %s cannot be read; skipped: %r", key, error)

    def task_keys(self) -> set[str]:
        """The `{project}/{queue}/{id}` of every unreadable task remembered."""
        return {key.removeprefix(_TASKS) for key in self._keys if key.startswith(_TASKS)}

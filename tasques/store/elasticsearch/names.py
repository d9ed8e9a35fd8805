"""Index names and document `_id`s of the Elasticsearch store. See README.md, "Index layout".

The project is the first part of every per-project `_id`: `{project}/{queue}/{id}` for a task (live and
archived), `{project}/{id}` for a recurring task and a batch, `{project}/{queue}` for queue settings and
`{project}/{queue}/{id}/{run}/{attempt}` for an attempt. Project names, queue names and ids exclude '/', so
each join is unambiguous.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from tasques.domain.timeline import Attempt
from tasques.log_fields import about

_MAX_ID_BYTES = 512


@dataclass(frozen=True)
class IndexNames:
    """Every index, alias, template and policy name Tasques uses under one prefix."""

    prefix: str

    @property
    def tasks(self) -> str:
        return f"{self.prefix}-tasks"

    @property
    def recurring(self) -> str:
        return f"{self.prefix}-recurring"

    @property
    def queues(self) -> str:
        """Queue settings, one document per (project, queue)."""
        return f"{self.prefix}-queues"

    @property
    def timeline(self) -> str:
        """Attempts of HTTP-target tasks, `_id` = `{project}/{queue}/{task id}/{run}/{attempt}`."""
        return f"{self.prefix}-timeline"

    @property
    def locks(self) -> str:
        return f"{self.prefix}-locks"

    @property
    def projects(self) -> str:
        """Project records, `_id` = name."""
        return f"{self.prefix}-projects"

    @property
    def tokens(self) -> str:
        """API token records, `_id` = token id."""
        return f"{self.prefix}-tokens"

    @property
    def admissions(self) -> str:
        """Quota admissions, one document per project (see quota.py)."""
        return f"{self.prefix}-admissions"

    @property
    def workers(self) -> str:
        """The worker registry, `_id` = `worker_doc_id(project, worker id)`."""
        return f"{self.prefix}-workers"

    @property
    def batches(self) -> str:
        """Batch records, `_id` = `{project}/{id}`."""
        return f"{self.prefix}-batches"

    @property
    def archive_alias(self) -> str:
        """Write alias of the archive; searching it covers every archive index."""
        return f"{self.prefix}-archive"

    @property
    def archive_pattern(self) -> str:
        return f"{self.prefix}-archive-*"

    @property
    def first_archive_index(self) -> str:
        return f"{self.prefix}-archive-000001"

    @property
    def archive_policy(self) -> str:
        return f"{self.prefix}-archive-policy"

    def template(self, what: str) -> str:
        return f"{self.prefix}-{what}"


def task_doc_id(project: str, queue: str, task_id: str) -> str:
    """`_id` of a task, live or archived."""
    return f"{project}/{queue}/{task_id}"


def recurring_doc_id(project: str, task_id: str) -> str:
    return f"{project}/{task_id}"


def batch_doc_id(project: str, batch_id: str) -> str:
    return f"{project}/{batch_id}"


def queue_doc_id(project: str, queue: str) -> str:
    return f"{project}/{queue}"


def worker_doc_id(project: str, worker_id: str) -> str:
    """`{project}/{worker id}`; a worker id whose `_id` would pass Elasticsearch's 512 bytes is hashed instead
    (after a newline, which no worker id holds: it must be printable). Worker ids may hold '/': the project,
    which cannot, ends at the first one."""
    doc_id = f"{project}/{worker_id}"
    if len(doc_id.encode()) <= _MAX_ID_BYTES:
        return doc_id
    return f"{project}/\n{hashlib.sha256(worker_id.encode()).hexdigest()}"


def attempt_doc_id(attempt: Attempt) -> str:
    return f"{attempt.project}/{attempt.key}"


def doc_log_fields(doc_id: str) -> dict[str, str]:
    """The task and queue of a task's `_id`, for `extra=` on a log line about it."""
    parts = doc_id.split("/")
    return about(task_id=parts[2], queue=parts[1]) if len(parts) == 3 else {}

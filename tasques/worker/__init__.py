"""The Python worker SDK: claim tasks from a Tasques server over HTTP and run async handlers on them.

It talks to the server only through the HTTP API; nothing here imports the server's own packages
(`tasques.api`, `tasques.service`, `tasques.store`, `tasques.domain`). See `tasques/worker/README.md`.
"""

from tasques.worker.client import (
    ApiError,
    ClaimLost,
    JsonDict,
    LastClaimed,
    Report,
    Result,
    ServerUnavailable,
    Task,
    TasquesClient,
    TasquesError,
)
from tasques.worker.producer import BatchStatus, Producer, new_task
from tasques.worker.worker import Handler, TaskContext, Worker, WorkerError, WorkerStats

__all__ = [
    "ApiError",
    "BatchStatus",
    "ClaimLost",
    "Handler",
    "JsonDict",
    "LastClaimed",
    "Producer",
    "Report",
    "Result",
    "ServerUnavailable",
    "Task",
    "TaskContext",
    "TasquesClient",
    "TasquesError",
    "Worker",
    "WorkerError",
    "WorkerStats",
    "new_task",
]

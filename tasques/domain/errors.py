"""Domain errors. The API maps each to one HTTP status, in one place (`tasques.api.errors`)."""

from __future__ import annotations

from dataclasses import dataclass


class TasquesError(Exception):
    """Base of every error the service reports to callers."""


@dataclass(frozen=True)
class FieldProblem:
    field: str
    problem: str


class InvalidInput(TasquesError):
    """Input that is well-formed JSON but breaks a rule; each problem names its field."""

    def __init__(self, message: str, problems: list[FieldProblem] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


class NotFound(TasquesError):
    """No task (or recurring task) with that id."""


class AlreadyExists(TasquesError):
    """The id is already taken; nothing was written."""


class NotClaimed(TasquesError):
    """The task is not in the state the operation needs (e.g. done on a queued task)."""


class NotOwnedByWorker(TasquesError):
    """The task is claimed, but by another worker."""


class ClaimMismatch(NotClaimed):
    """The claim id given is not the task's current claim (a late call from an earlier attempt)."""


class StoreUnavailable(TasquesError):
    """The store did not answer in time or could not be reached; nothing is known to have been written."""


class VersionConflict(TasquesError):
    """The record changed since it was read; the caller may re-read and retry."""


class QuotaExceeded(TasquesError):
    """The project holds as many outstanding tasks as its quota allows; nothing was written (429)."""


class Unauthenticated(TasquesError):
    """No credentials, or credentials that do not check out (401). The message never holds the secret."""


class Forbidden(TasquesError):
    """Valid credentials whose role or network does not allow the request (403)."""


class RateLimited(TasquesError):
    """The token made more requests than its rate allows (429 with Retry-After)."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after

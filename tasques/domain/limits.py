"""The limits of every input, in one place: names, integers, durations and times.

Each bound is what both stores hold (Elasticsearch `integer` is 32-bit, `date_nanos` ends in 2262, an `_id`
is at most 512 bytes) with a margin, so no accepted value can overflow later in a claim, the reaper or the
dispatcher. `tasques/api/README.md` documents them as a table; keep the two in step.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import Field

from tasques.domain.duration import MAX_DURATION, Duration, format_duration

# Names. Queue names and ids appear as URL path segments and in the Elasticsearch `_id` `{queue}/{id}`, so
# they exclude '/', '?', '#', '%' and whitespace; 200 + 1 + 256 bytes stays under the 512-byte `_id` limit.
MAX_QUEUE_LENGTH = 200
MAX_ID_LENGTH = 256
MAX_KIND_LENGTH = 200
# A recurring task's id plus "@<slot>" (28 characters) must still be a task id.
MAX_RECURRING_ID_LENGTH = 200
QUEUE_PATTERN = r"^[A-Za-z0-9_.:~+=-]+$"
ID_PATTERN = r"^[A-Za-z0-9_.:@~+=-]+$"
# A project is a tenant: its name is part of every key and `_id` (`{project}/{queue}/{id}`: 40 + 1 + 457 bytes
# stays under 512), so it excludes '/' and everything a queue name excludes, and is lower-case to keep URLs
# and headers unambiguous.
MAX_PROJECT_LENGTH = 40
PROJECT_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
DEFAULT_PROJECT = "default"
# A kind is never a path segment: any printable text (no control characters).
KIND_PATTERN = r"^[^\x00-\x1f\x7f]+$"

QueueName = Annotated[
    str,
    Field(min_length=1, max_length=MAX_QUEUE_LENGTH, pattern=QUEUE_PATTERN, examples=["run-later"]),
]
ProjectName = Annotated[
    str,
    Field(min_length=1, max_length=MAX_PROJECT_LENGTH, pattern=PROJECT_PATTERN, examples=["billing"]),
]
Identifier = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN)]
RecurringId = Annotated[
    str,
    Field(min_length=1, max_length=MAX_RECURRING_ID_LENGTH, pattern=ID_PATTERN, examples=["repeat-every-minute"]),
]
Kind = Annotated[str, Field(min_length=1, max_length=MAX_KIND_LENGTH, pattern=KIND_PATTERN, examples=["sayHello"])]
# A claim's `last_claimed.claim_id`, as a worker sends it back (header or batch item).
CLAIM_ID_MAX_LENGTH = 128
CLAIM_ID_PATTERN = rf"^[A-Za-z0-9._~-]{{1,{CLAIM_ID_MAX_LENGTH}}}$"
ClaimId = Annotated[str, Field(pattern=CLAIM_ID_PATTERN, max_length=CLAIM_ID_MAX_LENGTH)]
# The most items in one batch request (bulk create, batched done/failed/reports/unclaims).
MAX_BATCH_ITEMS = 1000
# A recurring task's schedule expression, and the fire times one schedule preview lists (`GET /schedules/preview`).
MAX_SCHEDULE_LENGTH = 200
DEFAULT_PREVIEW = 5
MAX_PREVIEW = 50
# Dead tasks one replay request puts back (by filter: `limit`, default DEFAULT_REPLAY; by ids: that many ids).
DEFAULT_REPLAY = 100
MAX_REPLAY = 1000

# Integers: Elasticsearch maps priority, retry_times, attempted and repeated as 32-bit `integer`.
MIN_PRIORITY = -(2**31)
MAX_PRIORITY = 2**31 - 1
MAX_RETRY_TIMES = 1_000_000
MAX_REPEAT_TIMES = 1_000_000
MAX_DOUBLINGS = 64
MAX_CONCURRENT_DISPATCHES = 10_000
MAX_DISPATCHES_PER_SECOND = 10_000.0

# Durations (every one is also at most MAX_DURATION, 3650 days, by `parse_duration`).
MAX_PROCESSING_TIMEOUT = timedelta(days=30)
MAX_RETRY_WAIT = timedelta(days=30)  # retry_interval, min_backoff, max_backoff
MAX_RETRY_DURATION = MAX_DURATION
MAX_REPEAT_INTERVAL = timedelta(days=366)
MAX_EXECUTION_DELAY_MS = int(MAX_DURATION / timedelta(milliseconds=1))

# run_at: [RUN_AT_MIN, RUN_AT_MAX). Every later time the server computes from it (a backoff, a repeat, a
# timeout: each at most MAX_DURATION) still fits Elasticsearch's date_nanos, which ends in April 2262.
RUN_AT_MIN = datetime(1970, 1, 1, tzinfo=UTC)
RUN_AT_MAX = datetime(2200, 1, 1, tzinfo=UTC)


# Positive durations with their field's maximum.
ProcessingTimeout = Annotated[Duration, Field(gt=timedelta(0), le=MAX_PROCESSING_TIMEOUT)]
RetryWait = Annotated[Duration, Field(gt=timedelta(0), le=MAX_RETRY_WAIT)]
RetryDuration = Annotated[Duration, Field(gt=timedelta(0), le=MAX_RETRY_DURATION)]
RepeatInterval = Annotated[Duration, Field(gt=timedelta(0), le=MAX_REPEAT_INTERVAL)]


def at_most(value: timedelta) -> str:
    """A maximum as field descriptions state it, e.g. `at most 720h0m0s`."""
    return f"at most {format_duration(value)}"


# The most tasks one task may depend on (`depends_on`).
MAX_DEPENDENCIES = 10_000

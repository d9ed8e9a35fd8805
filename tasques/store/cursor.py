"""Keyset cursors for task listings, shared by every store so a cursor means the same thing everywhere.

A cursor is the sort key of the last task of a page, (created_at in µs since the epoch, queue, id), as
url-safe base64 JSON. Listings are ordered newest first by that key.
"""

from __future__ import annotations

import base64
import binascii
import json

from tasques.domain.errors import FieldProblem, InvalidInput

Cursor = tuple[int, str, str]
# Elasticsearch sorts dates as nanoseconds in a signed 64-bit long; a larger value is no cursor we issued.
_MAX_MICROS = (2**63 - 1) // 1_000


def encode_cursor(last: Cursor) -> str:
    raw = json.dumps(list(last), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str) -> Cursor:
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        value = None
    if (
        isinstance(value, list)
        and len(value) == 3
        and type(value[0]) is int
        and 0 <= value[0] <= _MAX_MICROS
        and isinstance(value[1], str)
        and isinstance(value[2], str)
    ):
        return (value[0], value[1], value[2])
    raise InvalidInput("invalid cursor", [FieldProblem(field="cursor", problem="not a cursor this server returned")])

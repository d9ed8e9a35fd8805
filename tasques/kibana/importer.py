"""Posting saved objects to Kibana's import API (`POST [/s/{space}]/api/saved_objects/_import`)."""

from __future__ import annotations

import base64
import json
import ssl
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp

FILENAME = "tasques.ndjson"


@dataclass(frozen=True)
class Credentials:
    """Basic auth (`user`, `password`) or an API key: Kibana's `encoded` value, or `id:api_key`."""

    user: str | None = None
    password: str | None = None
    api_key: str | None = None

    def header(self) -> str | None:
        if self.api_key is not None:
            key = self.api_key
            if ":" in key:  # id:api_key, as the create API key call returns them apart
                key = base64.b64encode(key.encode()).decode()
            return f"ApiKey {key}"
        if self.user is not None:
            pair = f"{self.user}:{self.password or ''}".encode()
            return f"Basic {base64.b64encode(pair).decode()}"
        return None


@dataclass(frozen=True)
class ImportResult:
    """Kibana's 200 answer: `success` is false when any object failed (then `errors` says which and why)."""

    success: bool
    success_count: int
    errors: list[dict[str, Any]] = field(default_factory=list)


class KibanaError(Exception):
    """The import did not happen, or not completely."""


class KibanaUnreachable(KibanaError):
    """No HTTP answer: connection refused, name unknown, TLS failure, timeout."""


class KibanaRefused(KibanaError):
    """Kibana answered with an error status (401 bad credentials, 403 missing privileges, 404 no such space)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"Kibana answered {status}: {message}")
        self.status = status


def import_url(base_url: str, space: str | None) -> str:
    space_path = f"/s/{quote(space, safe='')}" if space else ""
    return f"{base_url.rstrip('/')}{space_path}/api/saved_objects/_import?overwrite=true"


async def import_objects(
    base_url: str,
    ndjson: bytes,
    credentials: Credentials = Credentials(),
    *,
    space: str | None = None,
    tls: ssl.SSLContext | bool = True,
    request_timeout: float = 60.0,
) -> ImportResult:
    """Import `ndjson`, overwriting objects with the same ids. `tls=False` skips certificate checks."""
    form = aiohttp.FormData()
    form.add_field("file", ndjson, filename=FILENAME, content_type="application/ndjson")
    headers = {"kbn-xsrf": "true"}
    auth = credentials.header()
    if auth is not None:
        headers["Authorization"] = auth
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=request_timeout)) as session,
            session.post(import_url(base_url, space), data=form, headers=headers, ssl=tls) as resp,
        ):
            body = await resp.text()
            status = resp.status
    except (aiohttp.ClientError, TimeoutError, OSError) as e:
        raise KibanaUnreachable(f"cannot reach Kibana at {base_url}: {e or type(e).__name__}") from e
    if status != 200:
        raise KibanaRefused(status, _message(body))
    try:
        answer = json.loads(body)
        return ImportResult(
            success=bool(answer["success"]),
            success_count=int(answer.get("successCount", 0)),
            errors=list(answer.get("errors", [])),
        )
    except (ValueError, KeyError, TypeError) as e:
        raise KibanaRefused(status, f"not an import answer: {body[:200]!r}") from e


def _message(body: str) -> str:
    """Kibana's error body is `{"statusCode", "error", "message"}`; anything else is shown shortened."""
    try:
        answer = json.loads(body)
        return str(answer.get("message") or answer.get("error") or body[:200])
    except (ValueError, AttributeError):
        return body[:200] or "(empty body)"


def describe_error(error: dict[str, Any]) -> str:
    """One line per failed object: `type id (title): why`."""
    what = f"{error.get('type')} {error.get('id')}"
    title = error.get("title") or (error.get("meta") or {}).get("title")
    if title:
        what += f" ({title})"
    detail = error.get("error") or {}
    why = str(detail.get("type", "unknown"))
    if detail.get("message"):
        why += f": {detail['message']}"
    if detail.get("references"):
        why += ": " + ", ".join(f"{r.get('type')} {r.get('id')}" for r in detail["references"])
    return f"{what}: {why}"

"""HTTP-target tasks (Cloud Tasks style): the request a task carries, and its queue's dispatch settings.

Pure models: no I/O. The dispatcher (`tasques.dispatch`) performs the request; stores persist these as given.
"""

from __future__ import annotations

import base64
import binascii
import json
import posixpath
import re
from collections.abc import Mapping
from datetime import timedelta
from enum import StrEnum
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SerializationInfo, field_serializer, model_validator

from tasques.domain.duration import PositiveDuration, format_duration


class TaskTarget(StrEnum):
    """Who runs a task: a pull worker that claims it, or the server's HTTP dispatcher."""

    PULL = "pull"
    HTTP = "http"


HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
BodyEncoding = Literal["json", "text", "base64"]


def _go_default(text: str) -> dict[str, Any]:
    """The schema's `default` of a duration field, written as the wire writes it (the same in request and
    response schemas, so generators see one model, not an -Input and an -Output)."""
    return {"default": text}


# Limits of an HTTP target's request, checked when the task is created (and again before it is sent).
MAX_REQUEST_TIMEOUT = timedelta(minutes=30)
MAX_HEADERS = 64
MAX_HEADER_NAME = 256
MAX_HEADER_VALUE = 8192
MAX_HEADERS_TOTAL = 32 * 1024
# Set by the HTTP client itself, or meaningful for one connection only: a task may not set them.
FORBIDDEN_HEADERS = frozenset(
    {"connection", "content-length", "expect", "host", "keep-alive", "proxy-connection", "te", "trailer",
     "transfer-encoding", "upgrade"}
)  # fmt: skip
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 7230 token (fullmatch)
_BAD_VALUE_CHARS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # controls other than tab: CR, LF, NUL, ...


def header_problems(headers: Mapping[str, str]) -> list[str]:
    """What is wrong with a task's request headers (empty when nothing is)."""
    problems: list[str] = []
    if len(headers) > MAX_HEADERS:
        problems.append(f"at most {MAX_HEADERS} headers")
    if sum(len(k) + len(v) for k, v in headers.items()) > MAX_HEADERS_TOTAL:
        problems.append(f"at most {MAX_HEADERS_TOTAL} bytes of headers in all")
    seen: set[str] = set()
    for name, value in headers.items():
        shown = repr(name[:40])
        if not _TOKEN.fullmatch(name) or len(name) > MAX_HEADER_NAME:
            problems.append(f"header name {shown} is not an RFC 7230 token of at most {MAX_HEADER_NAME} chars")
        elif name.lower() in FORBIDDEN_HEADERS:
            problems.append(f"header {shown} is set by the dispatcher and may not be given")
        elif name.lower() in seen:
            problems.append(f"header {shown} is given twice")
        if _BAD_VALUE_CHARS.search(value):
            problems.append(f"header {shown}: the value contains CR, LF, NUL or another control character")
        elif len(value) > MAX_HEADER_VALUE:
            problems.append(f"header {shown}: the value is longer than {MAX_HEADER_VALUE} chars")
        seen.add(name.lower())
    return problems


def url_problem(url: str) -> str | None:
    """Why `url` cannot be sent to (None when it can)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        return f"not a valid URL: {e}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host"
    if port == 0:
        return "port 0 is not a valid port"
    if _BAD_VALUE_CHARS.search(url) or " " in url:
        return "must not contain spaces or control characters"
    return None


def pem_or_path(value: str) -> tuple[str | None, str | None]:
    """(PEM text, None) for inline PEM or base64 of PEM; (None, path) for anything else."""
    text = value.strip()
    if text.startswith("-----BEGIN"):
        return text, None
    try:
        # Line-wrapped base64 is base64 too.
        decoded = base64.b64decode("".join(text.split()), validate=True).decode("ascii").strip()
    except (binascii.Error, UnicodeDecodeError):
        return None, value
    return (decoded, None) if decoded.startswith("-----BEGIN") else (None, value)


def is_encrypted_pem(pem: str) -> bool:
    return "ENCRYPTED" in pem.split("\n", 2)[0] or "Proc-Type: 4,ENCRYPTED" in pem


def tls_path_problem(path: str, files_dir: str | None) -> str | None:
    """Why a TLS file path is refused, judged on the text alone (None when it is acceptable).

    Paths are allowed only inside `files_dir` (relative to it, or absolute under it), never through `..`.
    Symbolic links are the dispatcher's to check, when it reads the file.
    """
    if files_dir is None:
        return "give inline PEM or base64 of PEM: file paths are refused (dispatch.tls_files_dir is not set)"
    if "\x00" in path or ".." in path.split("/"):
        return "must be a file inside dispatch.tls_files_dir, without '..'"
    root = posixpath.normpath(files_dir)
    full = posixpath.normpath(posixpath.join(root, path))
    if not full.startswith(root.rstrip("/") + "/"):
        return "must be a file inside dispatch.tls_files_dir"
    return None


def tls_file(path: str, files_dir: str) -> str:
    """The path a TLS file value names (call after `tls_path_problem` found nothing)."""
    return posixpath.normpath(posixpath.join(posixpath.normpath(files_dir), path))


# Serialization context flag (set by the API) that hides secrets such as inline TLS keys.
REDACT_SECRETS = "redact_secrets"
REDACTED = "<redacted>"


class TlsOptions(BaseModel):
    """TLS for an https:// target. Each of ca, cert and key is a PEM (inline, or base64 of it), or a file
    path inside the server's `dispatch.tls_files_dir` (refused when that is not set)."""

    # The redacting serializer changes no shape: keep one schema for requests and responses.
    model_config = ConfigDict(frozen=True, extra="forbid", json_schema_mode_override="validation")

    ca: str | None = Field(None, min_length=1, description="CA certificate(s) to verify the target against")
    cert: str | None = Field(None, min_length=1, description="client certificate, for mutual TLS")
    key: str | None = Field(None, min_length=1, description="the client certificate's private key")
    insecure_skip_verify: bool = Field(False, description="do not verify the target's certificate")

    @field_serializer("key")
    def _redact_inline_key(self, key: str | None, info: SerializationInfo) -> str | None:
        # An inline private key is stored for the dispatcher but never shown back through the API.
        redact = isinstance(info.context, dict) and info.context.get(REDACT_SECRETS)
        if redact and key is not None and not _plain_path(key):
            return REDACTED
        return key

    @model_validator(mode="after")
    def _key_with_cert(self) -> TlsOptions:
        if (self.cert is None) != (self.key is None):
            raise ValueError("cert and key go together")
        return self


def _plain_path(value: str) -> bool:
    # Shown back only when it cannot be key material: a path, on one line, without spaces.
    return pem_or_path(value)[1] is not None and not any(c.isspace() for c in value) and len(value) <= 4096


class HttpRequest(BaseModel):
    """The request the dispatcher sends for a task. 2xx is success; anything else is a failed attempt."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field(
        min_length=1, max_length=8192, pattern=r"^https?://", description="http:// or https:// URL to call"
    )
    method: HttpMethod = Field("POST", description="HTTP method")
    headers: dict[str, str] = Field(default_factory=dict, description="request headers")
    body: Any = Field(
        None,
        description="the body: any JSON value (body_encoding json), a string (text), or base64 of raw bytes (base64)",
    )
    body_encoding: BodyEncoding = Field("json", description="how `body` is to be sent: json, text or base64")
    timeout: PositiveDuration = Field(
        timedelta(seconds=30),
        description=f"how long to wait for the response, redirects included; at most "
        f"{format_duration(MAX_REQUEST_TIMEOUT)}",
        json_schema_extra=_go_default("30s"),
    )
    tls: TlsOptions | None = Field(None, description="TLS options for an https:// URL")
    follow_redirects: bool = Field(
        False,
        description="follow 3xx redirects (a bounded number; every hop is checked by the outbound policy); "
        "when false a 3xx answer is a failed attempt",
    )

    @model_validator(mode="after")
    def _body_matches_encoding(self) -> HttpRequest:
        if self.body is None or self.body_encoding == "json":
            return self
        if not isinstance(self.body, str):
            raise ValueError(f"body must be a string when body_encoding is {self.body_encoding}")
        if self.body_encoding == "base64":
            try:
                base64.b64decode(self.body, validate=True)
            except binascii.Error:
                raise ValueError("body is not valid base64") from None
        return self

    def payload(self) -> tuple[bytes | None, str | None]:
        """The bytes to send and the content type to default to (when the headers name none)."""
        if self.body is None:
            return None, None
        if self.body_encoding == "json":
            return json.dumps(self.body, separators=(",", ":")).encode(), "application/json"
        if self.body_encoding == "text":
            return str(self.body).encode(), "text/plain; charset=utf-8"
        return base64.b64decode(str(self.body)), "application/octet-stream"


def request_problems(request: HttpRequest, tls_files_dir: str | None) -> list[tuple[str, str]]:
    """(field, problem) for everything that keeps `request` from being sent, checked at creation and again
    by the dispatcher. Not model validators: tasks stored before a limit existed must still load."""
    problems: list[tuple[str, str]] = []
    if (problem := url_problem(request.url)) is not None:
        problems.append(("url", problem))
    problems += [("headers", p) for p in header_problems(request.headers)]
    if request.timeout > MAX_REQUEST_TIMEOUT:
        problems.append(("timeout", f"must be at most {format_duration(MAX_REQUEST_TIMEOUT)}"))
    tls = request.tls
    for name in ("ca", "cert", "key"):
        value = getattr(tls, name) if tls is not None else None
        if value is None:
            continue
        pem, path = pem_or_path(value)
        if pem is not None and is_encrypted_pem(pem):
            problems.append((f"tls.{name}", "an encrypted key cannot be used (no passphrase is ever asked for)"))
        if path is not None and (problem := tls_path_problem(path, tls_files_dir)) is not None:
            problems.append((f"tls.{name}", problem))
    return problems

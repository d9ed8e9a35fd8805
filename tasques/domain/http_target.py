"""HTTP-target tasks (Cloud Tasks style): the request a task carries, and its queue's dispatch settings.

Pure models: no I/O. The dispatcher (`tasques.dispatch`) performs the request; stores persist these as given.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import timedelta
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializationInfo, field_serializer, model_validator

from tasques.domain.duration import PositiveDuration


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


def pem_or_path(value: str) -> tuple[str | None, str | None]:
    """(PEM text, None) for inline PEM or base64 of PEM; (None, path) for anything else."""
    text = value.strip()
    if text.startswith("-----BEGIN"):
        return text, None
    try:
        decoded = base64.b64decode(text, validate=True).decode("ascii").strip()
    except (binascii.Error, UnicodeDecodeError):
        return None, value
    return (decoded, None) if decoded.startswith("-----BEGIN") else (None, value)


# Serialization context flag (set by the API) that hides secrets such as inline TLS keys.
REDACT_SECRETS = "redact_secrets"
REDACTED = "<redacted>"


class TlsOptions(BaseModel):
    """TLS for an https:// target. Each of ca, cert and key is a file path on the server, or a PEM (inline or
    base64-encoded)."""

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
        if redact and key is not None and not key.startswith("/"):
            return REDACTED
        return key

    @model_validator(mode="after")
    def _key_with_cert(self) -> TlsOptions:
        if (self.cert is None) != (self.key is None):
            raise ValueError("cert and key go together")
        return self


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
        description="how long to wait for the response",
        json_schema_extra=_go_default("30s"),
    )
    tls: TlsOptions | None = Field(None, description="TLS options for an https:// URL")

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

"""Authentication primitives of the API: token strings, JWTs, networks, rate limits, the audit trail, and the
`Authenticator` that combines them. See README.md."""

from tasques.api.access.authenticator import PROJECT_HEADER, Authenticator, TokenSource
from tasques.api.access.ratelimit import retry_after_header
from tasques.api.access_control import Principal

__all__ = ["PROJECT_HEADER", "Authenticator", "Principal", "TokenSource", "retry_after_header"]

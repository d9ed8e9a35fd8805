"""Authentication primitives of the API: token strings, JWTs, networks, rate limits, the audit trail, and the
`Authenticator` that combines them. See README.md."""

from tasques.api.access.authenticator import PROJECT_HEADER, Authenticator, Principal, TokenSource
from tasques.api.access.ratelimit import retry_after_header

__all__ = ["PROJECT_HEADER", "Authenticator", "Principal", "TokenSource", "retry_after_header"]

"""Who is calling, in which project: one `authenticate` per request, before any route runs.

Credentials, in the `Authorization` header:
- `Bearer tq_<id>_<secret>`: a project's API token (looked up by id, the secret's hash compared);
- `Bearer <JWT>`: a JSON Web Token (`tasques.api.access.jwt`), the project and role taken from its claims;
- `Bearer <auth.admin_token>`: the bootstrap admin credential from configuration;
- `Basic` with user = project name and password = one of that project's tokens (what the Go client sends);
- `Basic` with a user of `server.basic_auth`: project `auth.basic_auth_project`, role `auth.basic_auth_role`.
With `auth.enabled` false only the last applies, when users are configured; without them every request is
project `default`, role admin (the server as it was).

The `X-TASQUES-PROJECT` header: an admin acts in the project it names (its own project when absent); anyone
else may send only their own project (another is a 403).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import NoReturn, Protocol

from tasques.api.access import audit
from tasques.api.access.jwt import JwtError, JwtVerifier
from tasques.api.access.ratelimit import RateLimiter
from tasques.api.access_control import Principal
from tasques.config import AuthConfig, BasicAuthUser, Config
from tasques.domain.errors import FieldProblem, Forbidden, InvalidInput, NotFound, RateLimited, Unauthenticated
from tasques.domain.limits import DEFAULT_PROJECT, MAX_PROJECT_LENGTH, PROJECT_PATTERN
from tasques.domain.networks import Network, NetworkError, allowed, parse_networks
from tasques.domain.project import ApiToken, Project, Role
from tasques.service import tokens
from tasques.service.clock import Clock, utc_now
from tasques.service.ttl_cache import TtlCache

PROJECT_HEADER = "X-TASQUES-PROJECT"
MAX_AUTHORIZATION_LENGTH = 16_384
NEGATIVE_TTL = 1.0  # at most, seconds: an unknown token id is asked of the store again after this
CACHE_ENTRIES = 100_000
_PROJECT = re.compile(PROJECT_PATTERN)
_SCHEMES = frozenset({"basic", "bearer", "digest", "negotiate", "ntlm", "hoba", "mutual", "aws4-hmac-sha256"})


class TokenSource(Protocol):
    """Where tokens and projects are read: the project service, which caches projects (a `Store` also fits).
    Both raise `NotFound`; tokens are cached here, projects are not."""

    async def get_token(self, token_id: str) -> ApiToken: ...

    async def get_project(self, name: str) -> Project: ...


class _Failure(Exception):
    def __init__(self, reason: str, token_id: str | None = None, message: str = "invalid credentials") -> None:
        super().__init__(reason)
        self.reason = reason
        self.token_id = token_id
        self.message = message


def _fail(reason: str, token_id: str | None = None) -> NoReturn:
    raise _Failure(reason, token_id)


@dataclass(frozen=True)
class _Identity:
    principal: Principal  # with its own project, before the project header
    networks: tuple[Network, ...] = ()
    rate: float | None = None  # None: the server default
    rate_key: str = ""


class Authenticator:
    def __init__(
        self,
        config: AuthConfig,
        source: TokenSource,
        *,
        basic_users: Sequence[BasicAuthUser] = (),
        clock: Clock = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._source = source
        self._clock = clock
        self._monotonic = monotonic
        self._basic = {u.name.encode(): u.password.encode() for u in basic_users}
        admin = config.admin_token
        self._admin_hash = hashlib.sha256(admin.get_secret_value().encode()).digest() if admin is not None else None
        ttl = config.token_cache_ttl.total_seconds()
        self._tokens: TtlCache[ApiToken] = TtlCache(ttl, min(ttl, NEGATIVE_TTL), monotonic, CACHE_ENTRIES)
        self._limiter = RateLimiter(config.rate_limit_keys)
        self._jwt = JwtVerifier(config.jwt, lambda: clock().timestamp(), monotonic) if config.jwt.configured else None

    @classmethod
    def from_config(
        cls,
        config: Config,
        source: TokenSource,
        *,
        clock: Clock = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> Authenticator:
        return cls(config.auth, source, basic_users=config.server.basic_auth, clock=clock, monotonic=monotonic)

    def forget_token(self, token_id: str) -> None:
        """Drop this server's cached copy of a token (call after revoking it here: effective at once)."""
        self._tokens.invalidate(token_id)

    async def authenticate(self, headers: Mapping[str, str], peer_ip: str | None, path: str = "") -> Principal:
        """The caller of a request with `headers` (case-insensitive, such as aiohttp's) from `peer_ip`.

        Raises `Unauthenticated` (401), `Forbidden` (403: outside the token's networks, or another project
        named by a non-admin), `RateLimited` (429) or `InvalidInput` (400: a malformed project header).
        `StoreUnavailable` from the token source passes through (503)."""
        try:
            identity = await self._identify(headers)
        except _Failure as f:
            audit.auth_failure(f.reason, token_id=f.token_id, peer=peer_ip, path=path)
            raise Unauthenticated(f.message) from None
        principal = identity.principal
        if not allowed(identity.networks, peer_ip):
            audit.auth_failure(
                "peer outside the token's networks", token_id=principal.token_id, peer=peer_ip, path=path
            )
            raise Forbidden("this token may not be used from this address")
        if identity.rate_key and self._config.enabled:  # auth off: the server as it was, unlimited
            rate = identity.rate if identity.rate is not None else self._config.rate_per_second
            wait = self._limiter.check(identity.rate_key, rate, self._config.burst, self._monotonic())
            if wait is not None:
                raise RateLimited("too many requests for this token", retry_after=wait)
        project = self._project_of(principal, headers.get(PROJECT_HEADER))
        if project is None:
            audit.auth_failure(
                "project header names another project", token_id=principal.token_id, peer=peer_ip, path=path
            )
            raise Forbidden(
                f"{PROJECT_HEADER} must be absent or {principal.project!r}"
                + ("" if self._config.enabled else " (auth is off)")
            )
        return principal if project == principal.project else replace(principal, project=project)

    async def _identify(self, headers: Mapping[str, str]) -> _Identity:
        if not self._config.enabled and not self._basic:
            return _Identity(Principal(DEFAULT_PROJECT, Role.ADMIN, None, "none", "anonymous"))
        header = headers.get("Authorization")
        if header is None:
            raise _Failure("no credentials", message="authentication required")
        if len(header) > MAX_AUTHORIZATION_LENGTH:
            _fail("malformed authorization header")
        scheme, _, credentials = header.strip().partition(" ")
        credentials = credentials.strip()
        if scheme.lower() == "basic":
            return await self._basic_auth(credentials)
        if scheme.lower() == "bearer" and self._config.enabled:
            return await self._bearer(credentials)
        # Name the scheme only if it is one: a credential sent without a scheme must not reach the log.
        shown = scheme.lower() if scheme.lower() in _SCHEMES else "unknown"
        _fail(f"{shown} credentials not accepted")

    async def _bearer(self, credentials: str) -> _Identity:
        if self._admin_hash is not None and hmac.compare_digest(
            hashlib.sha256(credentials.encode()).digest(), self._admin_hash
        ):
            return _Identity(
                Principal(DEFAULT_PROJECT, Role.ADMIN, None, "token", "admin-token"), rate_key="admin-token"
            )
        if tokens.looks_like_token(credentials):
            return await self._api_token(credentials, project=None)
        if self._jwt is None:
            _fail("bearer credentials that are neither a token nor (JWT is off) a JWT")
        try:
            found = self._jwt.verify(credentials)
        except JwtError as e:
            _fail(f"jwt: {e}")
        rate = await self._rate_of(found.project, "jwt names an unknown project")
        actor = f"jwt:{found.subject}" if found.subject else "jwt"
        key = f"jwt:{found.project}:{found.subject or ''}"
        return _Identity(Principal(found.project, found.role, None, "jwt", actor[:200]), rate=rate, rate_key=key)

    async def _basic_auth(self, credentials: str) -> _Identity:
        try:
            decoded = base64.b64decode(credentials, validate=True)
        except (binascii.Error, ValueError):
            _fail("malformed basic credentials")
        user, sep, password = decoded.partition(b":")
        if not sep:
            _fail("malformed basic credentials")
        expected = self._basic.get(user)
        # Compared even for unknown names, so timing does not tell which names exist.
        if hmac.compare_digest(password, expected or b"\0" * 32) and expected is not None:
            name = user.decode(errors="replace")
            principal = Principal(
                self._config.basic_auth_project, self._config.basic_auth_role, None, "basic", f"basic:{name}"
            )
            return _Identity(principal, rate_key=f"basic:{name}")
        if self._config.enabled and password.startswith(tokens.PREFIX.encode()):
            try:
                return await self._api_token(password.decode(), project=user.decode())
            except UnicodeDecodeError:
                _fail("malformed basic credentials")
        _fail("wrong basic credentials")

    async def _api_token(self, text: str, *, project: str | None) -> _Identity:
        parsed = tokens.parse(text)
        if parsed is None:
            _fail("malformed token")
        token_id, secret = parsed
        try:
            record = await self._tokens.get(token_id, lambda: self._source.get_token(token_id))
        except NotFound:
            _fail("unknown token", token_id)
        if record.id != token_id or not tokens.matches(secret, record.secret_hash):
            _fail("wrong secret", token_id)
        if record.revoked_at is not None:
            _fail("token revoked", token_id)
        if not record.live_at(self._clock()):
            _fail("token expired", token_id)
        if project is not None and record.project != project:
            _fail("basic auth user is not the token's project", token_id)
        try:
            networks = _networks(tuple(record.allowed_networks))
        except NetworkError:
            _fail("token has unreadable allowed_networks", token_id)
        rate = await self._rate_of(record.project, "token's project does not exist", token_id)
        principal = Principal(record.project, record.role, token_id, "token", f"token:{token_id}")
        return _Identity(principal, networks, rate, f"token:{token_id}")

    async def _rate_of(self, name: str, reason: str, token_id: str | None = None) -> float | None:
        try:
            project = await self._source.get_project(name)
        except NotFound:
            _fail(reason, token_id)
        return project.rate_per_second

    def _project_of(self, principal: Principal, header: str | None) -> str | None:
        """The project the request acts in, or None when the principal may not act in the one named."""
        if header is None:
            return principal.project
        if len(header) > MAX_PROJECT_LENGTH or not _PROJECT.fullmatch(header):
            raise InvalidInput(
                f"{PROJECT_HEADER} is not a project name",
                [FieldProblem(PROJECT_HEADER, f"1-{MAX_PROJECT_LENGTH} characters matching {PROJECT_PATTERN}")],
            )
        if principal.role is Role.ADMIN and self._config.enabled:  # with auth off, one project only
            return header
        return header if header == principal.project else None


@lru_cache(maxsize=4096)
def _networks(texts: tuple[str, ...]) -> tuple[Network, ...]:
    return parse_networks(texts)

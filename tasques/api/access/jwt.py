"""JWT Bearer credentials, verified with PyJWT: HS256 with the shared secret (tokens without a `kid`), RS256 or
ES256 with the public key of a JWKS file that the token's `kid` names.

Each key has one algorithm, fixed when it is loaded: the token's `alg` must be that one (`none` is never one,
and an HS256 token can never be checked against an RSA or EC public key). `exp` is required; `exp` and `nbf`
are checked here against the injected clock with `leeway`, `iss` and `aud` by PyJWT when configured. The
project and role come from the configured claims; a missing or malformed claim or an unknown role fails.

Signature checks cost CPU on the event loop, so a verified token is kept (by its exact string, least recently
used evicted first) until its `exp`, and every later request with it costs a dictionary look-up. The JWKS file
is re-read when its size, mtime or inode change (checked at most once a second); a reload clears the cache, so
a key removed from the file stops working at once. A file that fails to load at start-up is an error; later
a bad file is logged and the keys already loaded stay in force.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt as pyjwt
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from tasques.config import JwtConfig
from tasques.domain.limits import MAX_PROJECT_LENGTH, PROJECT_PATTERN
from tasques.domain.project import Role

log = logging.getLogger(__name__)

MAX_JWT_LENGTH = 8192
MAX_JWKS_BYTES = 1_000_000
MIN_RSA_BITS = 2048
JWKS_CHECK_EVERY = 1.0  # seconds between stats of the JWKS file
_PROJECT = re.compile(PROJECT_PATTERN)
_ROLES = {r.value: r for r in Role}


class JwtError(Exception):
    """A JWT that does not verify. The message is a fixed phrase (for the audit line), never the token."""


class JwksError(ValueError):
    """A JWKS file that cannot be used."""


@dataclass(frozen=True)
class JwtIdentity:
    project: str
    role: Role
    subject: str | None
    expires_at: float  # epoch seconds


@dataclass(frozen=True)
class _Key:
    key: Any  # bytes (HS256) or a cryptography public key
    algorithm: str


class JwtVerifier:
    def __init__(self, config: JwtConfig, wall: Callable[[], float], monotonic: Callable[[], float]) -> None:
        """`wall`: epoch seconds (for exp/nbf); `monotonic`: seconds (for JWKS file checks)."""
        self._config = config
        self._wall = wall
        self._monotonic = monotonic
        self._leeway = config.leeway.total_seconds()
        secret = config.hs256_secret
        self._shared = _Key(secret.get_secret_value().encode(), "HS256") if secret is not None else None
        self._jwks: dict[str, _Key] = {}
        self._stamp: tuple[int, int, int] | None = None
        self._next_check = 0.0
        self._cache: OrderedDict[str, JwtIdentity] = OrderedDict()
        if config.jwks_file is not None:
            self._stamp = _stamp(config.jwks_file)
            self._jwks = load_jwks(config.jwks_file)
            self._next_check = monotonic() + JWKS_CHECK_EVERY

    def verify(self, token: str) -> JwtIdentity:
        self._maybe_reload()
        now = self._wall()
        cached = self._cache.get(token)
        if cached is not None:
            if now <= cached.expires_at + self._leeway:
                self._cache.move_to_end(token)
                return cached
            del self._cache[token]
            raise JwtError("expired")
        identity = self._verify(token, now)
        self._cache[token] = identity
        if len(self._cache) > self._config.cache_size:
            self._cache.popitem(last=False)
        return identity

    def _verify(self, token: str, now: float) -> JwtIdentity:
        if len(token) > MAX_JWT_LENGTH:
            raise JwtError("malformed")
        try:
            header = pyjwt.get_unverified_header(token)
        except pyjwt.PyJWTError:
            raise JwtError("malformed") from None
        kid = header.get("kid")
        if kid is None:
            key = self._shared
            if key is None:
                raise JwtError("no kid")
        elif not isinstance(kid, str) or (key := self._jwks.get(kid)) is None:
            raise JwtError("unknown kid")
        if header.get("alg") != key.algorithm:
            raise JwtError("algorithm not allowed for the key")
        config = self._config
        try:
            claims = pyjwt.decode(
                token,
                key.key,
                algorithms=[key.algorithm],
                audience=config.audience,
                issuer=config.issuer,
                options={
                    "verify_exp": False,  # checked below against the injected clock
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": config.audience is not None,
                    "verify_iss": config.issuer is not None,
                    "require": ["exp"],
                },
            )
        except pyjwt.InvalidSignatureError:
            raise JwtError("bad signature") from None
        except pyjwt.InvalidAudienceError:
            raise JwtError("wrong audience") from None
        except pyjwt.InvalidIssuerError:
            raise JwtError("wrong issuer") from None
        except pyjwt.MissingRequiredClaimError:
            raise JwtError("missing claim") from None
        except pyjwt.PyJWTError:
            raise JwtError("invalid") from None
        exp: Any = claims.get("exp")
        nbf: Any = claims.get("nbf", 0)
        if not _number(exp) or not _number(nbf):
            raise JwtError("malformed time claim")
        if now > exp + self._leeway:
            raise JwtError("expired")
        if now + self._leeway < nbf:
            raise JwtError("not yet valid")
        project = claims.get(config.project_claim)
        if not isinstance(project, str) or len(project) > MAX_PROJECT_LENGTH or not _PROJECT.fullmatch(project):
            raise JwtError("missing or invalid project claim")
        role = claims.get(config.role_claim)
        if not isinstance(role, str) or role not in _ROLES:
            raise JwtError("missing or unknown role claim")
        subject = claims.get("sub")
        return JwtIdentity(project, _ROLES[role], subject if isinstance(subject, str) else None, float(exp))

    def _maybe_reload(self) -> None:
        path = self._config.jwks_file
        if path is None or self._monotonic() < self._next_check:
            return
        self._next_check = self._monotonic() + JWKS_CHECK_EVERY
        try:
            stamp = _stamp(path)
            if stamp == self._stamp:
                return
            self._stamp = stamp
            keys = load_jwks(path)
        except (OSError, JwksError) as e:
            log.error("keeping the JWT keys loaded before: the JWKS file %s cannot be used: %s", path, e)
            return
        self._jwks = keys
        self._cache.clear()
        log.info("reloaded %d JWT keys from %s", len(keys), path)


def load_jwks(path: str) -> dict[str, _Key]:
    """The public keys of a JWKS file by kid; `JwksError` names the first key that is not usable."""
    with open(path, "rb") as f:
        raw = f.read(MAX_JWKS_BYTES + 1)
    if len(raw) > MAX_JWKS_BYTES:
        raise JwksError(f"{path} is larger than {MAX_JWKS_BYTES} bytes")
    try:
        document = json.loads(raw)
    except ValueError as e:
        raise JwksError(f"{path} is not JSON: {e}") from None
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise JwksError(f'{path} must hold an object with a "keys" list')
    keys: dict[str, _Key] = {}
    for n, entry in enumerate(entries):
        kid = entry.get("kid") if isinstance(entry, dict) else None
        if not isinstance(kid, str) or not kid:
            raise JwksError(f"key {n} of {path} has no kid")
        if kid in keys:
            raise JwksError(f"kid {kid!r} appears twice in {path}")
        keys[kid] = _public_key(entry, f"key {kid!r} of {path}")
    return keys


def _public_key(entry: dict[str, Any], where: str) -> _Key:
    if "d" in entry:
        raise JwksError(f"{where} is a private key: the file must hold public keys only")
    if entry.get("use", "sig") != "sig":
        raise JwksError(f"{where} is not a signing key (use {entry.get('use')!r})")
    kty = entry.get("kty")
    expected = {"RSA": "RS256", "EC": "ES256"}.get(kty) if isinstance(kty, str) else None
    if expected is None:
        raise JwksError(f"{where}: kty must be RSA or EC, not {kty!r}")
    algorithm = entry.get("alg", expected)
    if algorithm != expected:
        raise JwksError(f"{where}: a {kty} key must be for {expected}, not {algorithm!r}")
    if kty == "EC" and entry.get("crv") != "P-256":
        raise JwksError(f"{where}: an ES256 key must be on curve P-256")
    try:
        key = pyjwt.PyJWK(entry, algorithm).key
    except pyjwt.PyJWTError as e:
        raise JwksError(f"{where} cannot be loaded: {e}") from None
    if isinstance(key, RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise JwksError(f"{where}: an RSA key must have at least {MIN_RSA_BITS} bits")
    elif not isinstance(key, EllipticCurvePublicKey):
        raise JwksError(f"{where} is not a public key")
    return _Key(key, algorithm)


def _stamp(path: str) -> tuple[int, int, int]:
    st = os.stat(path)
    return st.st_mtime_ns, st.st_size, st.st_ino


def _number(value: object) -> bool:
    """A finite JSON number (PyJWT's JSON parser accepts NaN and Infinity, which would never expire)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)

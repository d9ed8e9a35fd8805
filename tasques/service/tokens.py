"""API token strings: `tq_<id>_<secret>`.

The id (16 letters and digits) is public: it names the token in the store, in logs and in admin routes. The
secret (32 random bytes, URL-safe base64 without padding: 43 characters) is shown once, when the token is made,
and only its SHA-256 is stored (a random 256-bit secret needs no slow hash). Both parts have fixed lengths, so
parsing never depends on where the `_` characters of the base64 alphabet fall.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from typing import NamedTuple

PREFIX = "tq_"
ID_LENGTH = 16
SECRET_BYTES = 32
SECRET_LENGTH = 43  # base64 of 32 bytes, unpadded
TOKEN_LENGTH = len(PREFIX) + ID_LENGTH + 1 + SECRET_LENGTH
_ID_ALPHABET = string.ascii_letters + string.digits
_TOKEN = re.compile(rf"tq_([A-Za-z0-9]{{{ID_LENGTH}}})_([A-Za-z0-9_-]{{{SECRET_LENGTH}}})")


class NewToken(NamedTuple):
    """A freshly made token: hand `plaintext` to the caller once, store `secret_hash` under `id`."""

    plaintext: str
    secret_hash: str
    id: str


def new_token() -> NewToken:
    token_id = "".join(secrets.choice(_ID_ALPHABET) for _ in range(ID_LENGTH))
    secret = secrets.token_urlsafe(SECRET_BYTES)
    return NewToken(f"{PREFIX}{token_id}_{secret}", hash_secret(secret), token_id)


def looks_like_token(text: str) -> bool:
    """Whether `text` claims to be a token string (it may still be malformed)."""
    return text.startswith(PREFIX)


def parse(text: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed token string, else None."""
    if len(text) != TOKEN_LENGTH:
        return None
    found = _TOKEN.fullmatch(text)
    return (found.group(1), found.group(2)) if found else None


def hash_secret(secret: str) -> str:
    """The stored form of a secret: lower-case hex SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(secret.encode()).hexdigest()


def matches(secret: str, secret_hash: str) -> bool:
    """Whether `secret` hashes to `secret_hash`, in time independent of where they differ."""
    return hmac.compare_digest(hash_secret(secret).encode(), secret_hash.encode())

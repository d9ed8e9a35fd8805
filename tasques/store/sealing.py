"""Encryption at rest: the `Sealer` (AES-256-GCM over a keyring of key ids) that every store uses.

A sealed value is one string, `$sealed:<key id>:<base64 of nonce + ciphertext + tag>`, of the compact JSON of
the plaintext value. The associated data names the record and the field (see `sealed_records.py`), so a
ciphertext copied into another record or field does not open. New writes use the current key; a value sealed
with any key still in the keyring opens, so keys rotate by adding a new current one and keeping the old ones
until nothing sealed with them is left. Which fields are sealed, and when, is `sealed_records.py`'s business.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Sequence
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic_core import from_json, to_json

from tasques.config import EncryptionConfig

PREFIX = "$sealed:"
KEY_BYTES = 32  # AES-256
_NONCE_BYTES = 12  # the GCM standard nonce; random per seal (2^32 seals per key keep collisions negligible)
_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class Unsealable(ValueError):
    """A sealed value that cannot be opened: unknown key id, no keys at all, tampered with, or copied from
    another record. A ValueError, so the stores' unreadable-record handling skips the record like a corrupt one."""


class SealingUnavailable(ValueError):
    """A record that must be sealed (a sensitive task) was to be written by a store without keys."""


def is_sealed(value: object) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


class Sealer:
    """AES-256-GCM with a keyring. `keys`: (key id, 32-byte key) pairs; `current`: the id new seals use (the
    last listed when None). Never shows key material (repr names the ids only)."""

    def __init__(self, keys: Sequence[tuple[str, bytes]], current: str | None = None) -> None:
        if not keys:
            raise ValueError("a sealer needs at least one key")
        ring: dict[str, AESGCM] = {}
        for key_id, key in keys:
            if not _KEY_ID.fullmatch(key_id):
                raise ValueError(f"key id {key_id[:64]!r} must be 1 to 64 of A-Z a-z 0-9 . _ -")
            if key_id in ring:
                raise ValueError(f"key id {key_id!r} is listed twice")
            if len(key) != KEY_BYTES:
                raise ValueError(f"key {key_id!r} must be {KEY_BYTES} bytes, not {len(key)}")
            ring[key_id] = AESGCM(key)
        self.current = current if current is not None else keys[-1][0]
        if self.current not in ring:
            raise ValueError(f"the current key {self.current!r} is not among the keys")
        self._ring = ring
        self._aead = ring[self.current]
        self._prefix = f"{PREFIX}{self.current}:"

    @classmethod
    def from_config(cls, config: EncryptionConfig) -> Sealer | None:
        """The configured sealer; None when no keys are configured (nothing is sealed)."""
        if not config.keys:
            return None
        return cls([(k.id, k.material()) for k in config.keys], config.current)

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._ring)

    def __repr__(self) -> str:
        return f"Sealer(keys={list(self._ring)}, current={self.current!r})"

    def seal(self, value: Any, aad: bytes) -> str:
        """`value` (any JSON value) sealed under the current key, bound to `aad`."""
        plaintext = to_json(value)  # pydantic's encoder: the JSON, not the cipher, is most of a seal's cost
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext, aad)
        return self._prefix + base64.b64encode(nonce + sealed).decode("ascii")

    def unseal(self, token: str, aad: bytes) -> Any:
        """The JSON value `token` seals; `Unsealable` unless it was sealed by a listed key for this `aad`."""
        key_id, blob = _split(token)
        aead = self._ring.get(key_id)
        if aead is None:
            raise Unsealable(f"sealed with key {key_id!r}, which is not among the configured keys {list(self._ring)}")
        try:
            plaintext = aead.decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], aad)
        except InvalidTag:
            raise Unsealable(
                f"a value sealed with key {key_id!r} does not open: altered, or not this record's"
            ) from None
        return from_json(plaintext)


def key_id_of(token: str) -> str:
    """The id of the key that sealed `token` (for rotation checks and error messages)."""
    return _split(token)[0]


def _split(token: str) -> tuple[str, bytes]:
    if not is_sealed(token):
        raise Unsealable("not a sealed value")
    key_id, sep, encoded = token[len(PREFIX) :].partition(":")
    if not sep:
        raise Unsealable("a sealed value without a key id")
    try:
        blob = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise Unsealable(f"a value sealed with key {key_id[:64]!r} is not valid base64") from None
    if len(blob) < _NONCE_BYTES + 16:  # nonce + the GCM tag at least
        raise Unsealable(f"a value sealed with key {key_id[:64]!r} is truncated")
    return key_id, blob

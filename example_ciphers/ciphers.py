"""The ciphers, in Python: what the producer validates requests with and what the Python worker runs.

`worker_go/ciphers.go` implements the same functions; `vectors.json` holds the outputs both must produce,
errors (and their messages) included.

A task's `kind` is the cipher family and its `args` carry the plaintext and the family's parameter:

    rot13     {"plaintext"}
    base64    {"plaintext"}                 standard alphabet, padded, of the UTF-8 bytes
    caesar    {"plaintext", "shift": N}     a whole number, -1000000..1000000, applied mod 26
    vigenere  {"plaintext", "key": "LEMON"} 1 to 100 ASCII letters, case-insensitive
    md5       {"plaintext"}                 lower-case hex digest of the UTF-8 bytes
    sha256    {"plaintext"}                 likewise

The letter ciphers shift only the ASCII letters A-Z and a-z, keeping their case; every other character is
kept as it is. Vigenère moves on to the next key letter only after a letter of the plaintext.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

KINDS = ("rot13", "base64", "caesar", "vigenere", "md5", "sha256")
MAX_SHIFT = 1_000_000
MAX_KEY_LETTERS = 100
MAX_PLAINTEXT_CHARS = 10_000  # what the producer accepts; the workers take any length

_KEY = re.compile(rf"[A-Za-z]{{1,{MAX_KEY_LETTERS}}}")
_CAESAR = re.compile(r"caesar-(-?\d{1,7})")


class CipherError(ValueError):
    """The task's kind or args are not something a cipher can run on (the message is shared with Go)."""


def _shift_letter(c: str, shift: int) -> str:
    if "a" <= c <= "z":
        return chr((ord(c) - 97 + shift) % 26 + 97)
    if "A" <= c <= "Z":
        return chr((ord(c) - 65 + shift) % 26 + 65)
    return c


def _is_letter(c: str) -> bool:
    return "a" <= c <= "z" or "A" <= c <= "Z"


def caesar(plaintext: str, shift: int) -> str:
    return "".join(_shift_letter(c, shift) for c in plaintext)


def rot13(plaintext: str) -> str:
    return caesar(plaintext, 13)


def vigenere(plaintext: str, key: str) -> str:
    shifts = [ord(k.lower()) - 97 for k in key]
    out: list[str] = []
    i = 0
    for c in plaintext:
        if _is_letter(c):
            out.append(_shift_letter(c, shifts[i % len(shifts)]))
            i += 1
        else:
            out.append(c)
    return "".join(out)


def b64(plaintext: str) -> str:
    return base64.b64encode(plaintext.encode()).decode("ascii")


def md5(plaintext: str) -> str:
    return hashlib.md5(plaintext.encode(), usedforsecurity=False).hexdigest()


def sha256(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def _plaintext(args: Mapping[str, Any]) -> str:
    value = args.get("plaintext")
    if not isinstance(value, str):
        raise CipherError("args.plaintext must be a string")
    try:
        value.encode()
    except UnicodeEncodeError:  # a lone surrogate, which JSON can carry and UTF-8 cannot
        raise CipherError("args.plaintext must be valid Unicode") from None
    return value


def _shift(args: Mapping[str, Any]) -> int:
    value = args.get("shift")
    # JSON has one number type: 3 and 3.0 are the same shift (Go decodes both to float64), true is not one.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not -MAX_SHIFT <= value <= MAX_SHIFT:
        raise CipherError(f"args.shift must be a whole number from -{MAX_SHIFT} to {MAX_SHIFT}")
    return value


def _key(args: Mapping[str, Any]) -> str:
    value = args.get("key")
    if not isinstance(value, str) or not _KEY.fullmatch(value):
        raise CipherError(f"args.key must be 1 to {MAX_KEY_LETTERS} ASCII letters")
    return value


_ENCODERS: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "rot13": lambda args: rot13(_plaintext(args)),
    "base64": lambda args: b64(_plaintext(args)),
    "caesar": lambda args: caesar(_plaintext(args), _shift(args)),
    "vigenere": lambda args: vigenere(_plaintext(args), _key(args)),
    "md5": lambda args: md5(_plaintext(args)),
    "sha256": lambda args: sha256(_plaintext(args)),
}
assert tuple(_ENCODERS) == KINDS


def encode(kind: str, args: Mapping[str, Any] | None) -> str:
    """The ciphertext of a task of `kind` with `args`; `CipherError` if they are not valid."""
    encoder = _ENCODERS.get(kind)
    if encoder is None:
        raise CipherError(f"unknown cipher kind '{kind}'")
    if args is None:
        raise CipherError("args.plaintext must be a string")
    return encoder(args)


@dataclass(frozen=True)
class Request:
    """An encode request as the producer enqueues it: the task's kind and args, and the name shown for it."""

    kind: str
    args: dict[str, Any]
    cipher: str  # e.g. "caesar-3", "vigenere(LEMON)"


def parse_request(cipher: object, plaintext: object, key: object = None) -> Request:
    """Validate what the page sends: `cipher` is a kind, or `caesar-N`; vigenère takes `key`.

    Raises `CipherError` naming what is wrong, so the producer answers 400 before anything is enqueued.
    """
    if not isinstance(plaintext, str) or not plaintext:
        raise CipherError("plaintext must be a non-empty string")
    if len(plaintext) > MAX_PLAINTEXT_CHARS:
        raise CipherError(f"plaintext must be at most {MAX_PLAINTEXT_CHARS} characters")
    if not isinstance(cipher, str):
        raise CipherError("cipher must be a string")
    name = cipher.strip().lower().replace("è", "e")
    args: dict[str, Any] = {"plaintext": plaintext}
    caesar_match = _CAESAR.fullmatch(name)
    if caesar_match:
        kind, args["shift"], shown = "caesar", int(caesar_match.group(1)), name
    elif name == "vigenere":
        kind, args["key"] = "vigenere", key
        shown = f"vigenere({key})"
    elif name in KINDS and name != "caesar":
        kind, shown = name, name
    else:
        raise CipherError(
            f"cipher must be one of rot13, base64, caesar-N (e.g. caesar-3), vigenere, md5, sha256; got {cipher!r}"
        )
    encode(kind, args)  # the same checks the workers make: shift range, key letters, valid Unicode
    return Request(kind, args, shown)

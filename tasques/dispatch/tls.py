"""SSL contexts for HTTP targets from a task's `TlsOptions`, built off the event loop and cached.

Material is inline PEM (or base64 of it), or a file inside `dispatch.tls_files_dir`. Files are read here,
in Python, and handed to OpenSSL as data: a file problem of any kind gets one and the same message, so
error texts never tell which server files exist. OpenSSL never prompts for a passphrase.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import tempfile
import time
from collections import OrderedDict

from tasques.domain.http_target import TlsOptions, pem_or_path, tls_file, tls_path_problem

CACHE_SIZE = 256
CACHE_TTL = 300.0  # seconds: rotated files are picked up within this long
MAX_FILE = 1024 * 1024


class TlsMaterialError(ValueError):
    """TLS material that cannot be used. `final` when it never will (the path is refused outright)."""

    def __init__(self, message: str, *, final: bool = False) -> None:
        super().__init__(message)
        self.final = final


class _PassphraseWanted(Exception):
    pass


def _no_passphrase() -> str:
    # Given as load_cert_chain's password callback, so OpenSSL calls this instead of prompting on a terminal.
    raise _PassphraseWanted


def material(value: str, name: str, files_dir: str | None) -> str:
    """The PEM text of a ca/cert/key value."""
    pem, path = pem_or_path(value)
    if pem is not None:
        return pem
    assert path is not None
    problem = tls_path_problem(path, files_dir)
    if problem is not None or files_dir is None:
        raise TlsMaterialError(f"tls.{name}: {problem}", final=True)
    unusable = TlsMaterialError(
        f"tls.{name}: the file cannot be used (missing, unreadable, outside dispatch.tls_files_dir, or not PEM)"
    )
    root = os.path.realpath(files_dir)
    real = os.path.realpath(tls_file(path, files_dir))
    if os.path.commonpath([root, real]) != root or real == root:
        raise unusable  # a symbolic link out of the directory
    try:
        with open(real, "rb") as f:
            text = f.read(MAX_FILE).decode("ascii")
    except (OSError, UnicodeDecodeError):
        raise unusable from None
    if not text.lstrip().startswith("-----BEGIN"):
        raise unusable
    return text


def build_context(options: TlsOptions, files_dir: str | None) -> ssl.SSLContext:
    """Blocking (file reads, OpenSSL parsing): run it in a thread. Raises TlsMaterialError."""
    ca = material(options.ca, "ca", files_dir) if options.ca is not None else None
    try:
        context = ssl.create_default_context(cadata=ca)
    except ssl.SSLError:
        raise TlsMaterialError("tls.ca: not a valid PEM certificate") from None
    if options.insecure_skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if options.cert is not None and options.key is not None:
        cert = material(options.cert, "cert", files_dir)
        key = material(options.key, "key", files_dir)
        with tempfile.TemporaryDirectory(prefix="tasques-tls-") as tmp:
            # load_cert_chain reads files only: the PEMs go through private temporary files.
            cert_path, key_path = _write(tmp, "cert.pem", cert), _write(tmp, "key.pem", key)
            try:
                context.load_cert_chain(cert_path, key_path, password=_no_passphrase)
            except _PassphraseWanted:
                raise TlsMaterialError("tls.key: the key is encrypted; give an unencrypted key") from None
            except ssl.SSLError:
                raise TlsMaterialError("tls.cert, tls.key: not a valid certificate and matching key") from None
    return context


def _write(directory: str, name: str, text: str) -> str:
    path = os.path.join(directory, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


class TlsContexts:
    """Contexts per distinct options, least recently used evicted, each rebuilt after `CACHE_TTL`."""

    def __init__(self, files_dir: str | None) -> None:
        self._files_dir = files_dir
        self._cache: OrderedDict[TlsOptions, tuple[float, ssl.SSLContext]] = OrderedDict()

    async def get(self, options: TlsOptions) -> ssl.SSLContext:
        now = time.monotonic()
        hit = self._cache.get(options)
        if hit is not None and now - hit[0] < CACHE_TTL:
            self._cache.move_to_end(options)
            return hit[1]
        context = await asyncio.to_thread(build_context, options, self._files_dir)
        self._cache[options] = (now, context)
        self._cache.move_to_end(options)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return context

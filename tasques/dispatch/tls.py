"""SSL contexts for HTTP targets from a task's `TlsOptions` (files or PEM), cached per distinct options."""

from __future__ import annotations

import os
import ssl
import tempfile
from functools import lru_cache

from tasques.domain.http_target import TlsOptions, pem_or_path


@lru_cache(maxsize=256)
def ssl_context(options: TlsOptions) -> ssl.SSLContext:
    """Raises `ssl.SSLError` or `OSError` for unreadable or invalid material."""
    if options.ca is not None:
        pem, path = pem_or_path(options.ca)
        context = ssl.create_default_context(cafile=path, cadata=pem)
    else:
        context = ssl.create_default_context()
    if options.insecure_skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if options.cert is not None and options.key is not None:
        cert_pem, cert_path = pem_or_path(options.cert)
        key_pem, key_path = pem_or_path(options.key)
        with tempfile.TemporaryDirectory(prefix="tasques-tls-") as tmp:
            # load_cert_chain reads files only: inline PEMs go through private temporary files.
            if cert_pem is not None:
                cert_path = _write(tmp, "cert.pem", cert_pem)
            if key_pem is not None:
                key_path = _write(tmp, "key.pem", key_pem)
            assert cert_path is not None
            context.load_cert_chain(cert_path, key_path)
    return context


def _write(directory: str, name: str, text: str) -> str:
    path = os.path.join(directory, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path

"""The browser of the UI tests: Debian's `chromium`, driven by Playwright for Python.

Playwright never downloads a browser here: it launches /usr/bin/chromium, installed from Debian's package when
missing (tests/packaged.py: as root, with apt-get; otherwise a loud failure naming the command).
`python -m tests.ui.chromium` does just that; scripts/run-tests calls it before the tests, after the other apt
steps (two apt-get runs cannot share the package database).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from tests.packaged import PackageUnavailable, ensure_binaries, version_of

CHROMIUM = Path("/usr/bin/chromium")
PACKAGES = {str(CHROMIUM): "chromium"}


def _find(binary: str) -> Path | None:
    path = Path(binary)
    return path if path.is_file() and os.access(path, os.X_OK) else None


def ensure_chromium() -> Path:
    """/usr/bin/chromium, installed when missing; PackageUnavailable (with what went wrong) when it cannot be."""
    ensure_binaries(PACKAGES, _find)
    return CHROMIUM


def launch_options() -> dict[str, Any]:
    """Keyword arguments of `playwright.chromium.launch`: Debian's binary, headless. Chromium's sandbox needs
    user namespaces a root process in a container rarely has, so as root it runs without one."""
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    # Containers often give /dev/shm 64 MB, which a full-page screenshot can exhaust.
    args.append("--disable-dev-shm-usage")
    return {"executable_path": str(ensure_chromium()), "headless": True, "args": args}


if __name__ == "__main__":
    try:
        print(f"chromium {version_of(ensure_chromium())}: {CHROMIUM}")
    except PackageUnavailable as e:
        sys.exit(f"chromium: {e}")

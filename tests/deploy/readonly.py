"""A command run as on `docker run --read-only --tmpfs /tmp -v DATA:...`: in a private mount namespace whose
every file system is remounted read-only, except /tmp (which also holds the test's stand-in for the volume)
and the kernel's /dev, /proc and /sys. The host's mounts are untouched. Needs root or user namespaces."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

# Runs inside the namespace: $1 is the working directory, the rest the command, exec'd so it keeps the PID.
_SCRIPT = r"""
set -eu
mount --bind /tmp /tmp
findmnt -rno TARGET,OPTIONS | while read -r target options; do
    case "$target" in /tmp|/tmp/*|/proc|/proc/*|/sys|/sys/*|/dev|/dev/*) continue ;; esac
    case "$options" in ro|ro,*) continue ;; esac
    mount -o remount,bind,ro "$target"
done
case "$(findmnt -no OPTIONS /)" in ro|ro,*) ;; *) echo "read-only sandbox: / is still writable" >&2; exit 97 ;; esac
cd "$1"
shift
exec "$@"
"""


def read_only(argv: Sequence[str], workdir: Path) -> list[str]:
    """`argv` wrapped to run in `workdir` on a read-only root."""
    # Root can make a mount namespace directly; anyone else through a user namespace that maps them to root.
    user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
    return [
        "unshare",
        *user,
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        _SCRIPT,
        "sandbox",
        str(workdir),
        *argv,
    ]


def unavailable() -> str | None:
    """Why no read-only sandbox can be made here, or None."""
    try:
        proc = subprocess.run(read_only(["true"], Path("/")), capture_output=True, text=True, timeout=30, check=False)
    except OSError as e:
        return f"unshare: {e}"
    return None if proc.returncode == 0 else f"unshare exited {proc.returncode}: {proc.stderr.strip()}"

"""The Docker build context as `.dockerignore` cuts it, and a stage's COPYs laid out from it in a directory.

Matching follows Docker's rules for the patterns this repo uses: a path is excluded by the last pattern that
matches it or one of its parent directories (`!` re-includes); `*` and `?` stay within one path segment,
`**` spans any number of them, `[...]` is a character class. A leading `/` and `./` are dropped.
"""

from __future__ import annotations

import posixpath
import re
import shutil
from pathlib import Path

from tests.deploy.dockerfile import Copy


def _regex(pattern: str) -> re.Pattern[str]:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):  # `**/` also matches no directory at all
                out.append("(?:.*/)?")
                i += 1
            else:
                out.append(".*")
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.index("]", i + 1)
            out.append(pattern[i : end + 1])
            i = end
        elif c == "\\":
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out))


class DockerIgnore:
    def __init__(self, text: str) -> None:
        self.rules: list[tuple[bool, re.Pattern[str]]] = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            pattern = posixpath.normpath(line.lstrip("!").strip().lstrip("/"))
            self.rules.append((negate, _regex(pattern)))

    def excluded(self, path: str) -> bool:
        """Whether `path` (relative to the context, `/`-separated) stays out of the context."""
        parts = path.split("/")
        candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        result = False
        for negate, regex in self.rules:
            if any(regex.fullmatch(c) for c in candidates):
                result = not negate
        return result


class BuildContext:
    """The repository as `docker build .` sends it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        ignore = root / ".dockerignore"
        self.ignore = DockerIgnore(ignore.read_text() if ignore.exists() else "")

    def files(self, source: str) -> list[str]:
        """The context's files (and links) under `source`, relative to the root; empty if none are sent."""
        top = self.root / source
        if top.is_symlink() or top.is_file():
            found = [top]
        elif top.is_dir():
            found = sorted(p for p in top.rglob("*") if p.is_symlink() or p.is_file())
        else:
            return []
        rels = [p.relative_to(self.root).as_posix() for p in found]
        return [r for r in rels if not self.ignore.excluded(r)]

    def lay_out(self, copies: list[Copy], into: Path) -> None:
        """Apply `copies` (COPYs from the context) under `into` as Docker would: a directory's contents go into
        the destination, a file goes to the destination or into it (a `/` ending or several sources), links
        are copied as links."""
        for copy in copies:
            if "from" in copy.flags:
                continue
            dest = posixpath.join(copy.workdir, copy.dest)
            into_dir = copy.dest.endswith("/") or len(copy.sources) > 1
            for source in copy.sources:
                clean = posixpath.normpath(source)
                files = self.files(clean)
                if not files:
                    raise FileNotFoundError(f"COPY {source}: not in the build context")
                is_dir = (self.root / clean).is_dir() and not (self.root / clean).is_symlink()
                for rel in files:
                    if is_dir:
                        target = posixpath.join(dest, posixpath.relpath(rel, clean))
                    elif into_dir:
                        target = posixpath.join(dest, posixpath.basename(rel))
                    else:
                        target = dest
                    _copy_one(self.root / rel, into / target.lstrip("/"))


def _copy_one(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_symlink():
        target.symlink_to(source.readlink())
    else:
        shutil.copyfile(source, target)

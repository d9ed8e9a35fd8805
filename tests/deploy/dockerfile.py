"""A reader of the Dockerfile's instructions, enough to check what the image promises: stages, ENV, COPY,
USER, exec-form commands. It follows Docker's rules for what this repo's Dockerfile uses (comment lines,
backslash continuations, `KEY=VALUE` lists with shell quoting, JSON arrays); anything else raises.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path


class DockerfileError(ValueError):
    """The Dockerfile uses a form this reader does not accept (e.g. a shell-form ENTRYPOINT)."""


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case, e.g. "COPY"
    args: str  # the rest of the instruction, continuation lines joined
    line: int  # where it starts, 1-based


@dataclass
class Stage:
    base: str  # the FROM image or an earlier stage's name
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None


@dataclass(frozen=True)
class Copy:
    sources: list[str]
    dest: str
    flags: dict[str, str]  # e.g. {"from": "build", "chown": "..."}
    workdir: str  # the WORKDIR the COPY runs in (a relative dest is under it)


def instructions(text: str) -> list[Instruction]:
    found: list[Instruction] = []
    parts: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        # Comment lines are dropped, also inside a continuation (as Docker does); a parser directive is one too.
        if not stripped or stripped.startswith("#"):
            continue
        if not parts:
            start = number
        continued = raw.rstrip().endswith("\\")
        parts.append(raw.rstrip()[:-1] if continued else raw)
        if not continued:
            keyword, _, args = "".join(parts).strip().partition(" ")
            found.append(Instruction(keyword.upper(), args.strip(), start))
            parts = []
    if parts:
        raise DockerfileError(f"line {start}: the last instruction ends in a continuation")
    return found


def stages(text: str) -> list[Stage]:
    result: list[Stage] = []
    for ins in instructions(text):
        if ins.keyword == "FROM":
            words = ins.args.split()
            if any(w.startswith("--") for w in words):
                raise DockerfileError(f"line {ins.line}: FROM flags are not read here")
            if len(words) == 3 and words[1].upper() == "AS":
                result.append(Stage(words[0], words[2]))
            elif len(words) == 1:
                result.append(Stage(words[0], None))
            else:
                raise DockerfileError(f"line {ins.line}: FROM {ins.args!r}")
        elif not result:
            if ins.keyword != "ARG":
                raise DockerfileError(f"line {ins.line}: {ins.keyword} before the first FROM")
        else:
            result[-1].instructions.append(ins)
    if not result:
        raise DockerfileError("no FROM")
    return result


class Dockerfile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.stages = stages(path.read_text())

    def stage(self, name: str) -> Stage:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(name)

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def chain(self, stage: Stage) -> list[Stage]:
        """`stage` and the earlier stages it is built FROM, the first one built first."""
        names = {s.name for s in self.stages if s.name}
        chain = [stage]
        while chain[0].base in names:
            chain.insert(0, self.stage(chain[0].base))
        return chain

    def external_base(self, stage: Stage) -> str:
        """The image (not a stage) that `stage` starts from in the end."""
        return self.chain(stage)[0].base

    def env(self, stage: Stage) -> dict[str, str]:
        """Every ENV in force at the end of `stage`, inherited ones first (the base image's own are not known)."""
        result: dict[str, str] = {}
        for s in self.chain(stage):
            for ins in s.all("ENV"):
                result.update(key_values(ins))
        return result

    def labels(self, stage: Stage) -> dict[str, str]:
        result: dict[str, str] = {}
        for s in self.chain(stage):
            for ins in s.all("LABEL"):
                result.update(key_values(ins))
        return result

    def workdir(self, stage: Stage) -> str:
        current = "/"
        for s in self.chain(stage):
            for ins in s.all("WORKDIR"):
                current = str(Path(current, ins.args))
        return current

    def copies(self, stage: Stage) -> list[Copy]:
        result: list[Copy] = []
        workdir = "/"
        for s in self.chain(stage):
            for ins in s.instructions:
                if ins.keyword == "WORKDIR":
                    workdir = str(Path(workdir, ins.args))
                elif ins.keyword in ("COPY", "ADD"):
                    if ins.keyword == "ADD":
                        raise DockerfileError(f"line {ins.line}: ADD (use COPY: ADD also fetches and unpacks)")
                    words = shlex.split(ins.args)
                    flags = dict(w[2:].partition("=")[::2] for w in words if w.startswith("--"))
                    paths = [w for w in words if not w.startswith("--")]
                    if len(paths) < 2:
                        raise DockerfileError(f"line {ins.line}: COPY needs a source and a destination")
                    result.append(Copy(paths[:-1], paths[-1], flags, workdir))
        return result


def key_values(ins: Instruction) -> dict[str, str]:
    """`KEY=VALUE ...` with shell quoting, or the legacy `KEY VALUE` form."""
    words = shlex.split(ins.args)
    if words and "=" not in words[0]:
        return {words[0]: ins.args.partition(" ")[2].strip()}
    pairs = [w.partition("=") for w in words]
    if any(not sep for _, sep, _ in pairs):
        raise DockerfileError(f"line {ins.line}: {ins.keyword} {ins.args!r} mixes forms")
    return {k: v for k, _, v in pairs}


def exec_form(ins: Instruction | None) -> list[str]:
    """An instruction's JSON-array argument. The shell form is refused: with it /bin/sh is PID 1, and a
    SIGTERM would stop the shell, not drain the server."""
    if ins is None:
        raise DockerfileError("missing instruction")
    try:
        value = json.loads(ins.args)
    except json.JSONDecodeError as e:
        raise DockerfileError(f"line {ins.line}: {ins.keyword} is not in exec (JSON) form") from e
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DockerfileError(f"line {ins.line}: {ins.keyword} is not a JSON array of strings")
    return value


def healthcheck_command(ins: Instruction) -> list[str]:
    """The exec-form CMD of a HEALTHCHECK, after its --options."""
    options, sep, command = ins.args.partition("CMD ")
    if not sep or not all(w.startswith("--") for w in options.split()):
        raise DockerfileError(f"line {ins.line}: HEALTHCHECK {ins.args!r}")
    return exec_form(Instruction("HEALTHCHECK CMD", command, ins.line))

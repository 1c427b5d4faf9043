"""A small Dockerfile reader for the deploy tests: instructions per stage, ARG defaults resolved.

Enough of Docker's grammar for our own files: line continuations, comment lines (also inside a
continued instruction), `FROM x AS name`, and `${VAR}`/`$VAR` from ARG and ENV defaults.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

_VAR = re.compile(r"\$\{(\w+)\}|\$(\w+)")


@dataclass
class Instruction:
    keyword: str
    args: str
    line: int


@dataclass
class Stage:
    name: str | None
    base: str
    instructions: list[Instruction] = field(default_factory=list)

    def of(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


@dataclass
class Dockerfile:
    path: Path
    global_args: dict[str, str]
    stages: list[Stage]

    @classmethod
    def read(cls, path: Path) -> Dockerfile:
        global_args: dict[str, str] = {}
        stages: list[Stage] = []
        for instruction in _instructions(path.read_text()):
            if instruction.keyword == "FROM":
                words = instruction.args.split()
                if "--platform" in words[0]:
                    words = words[1:]
                name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
                stages.append(Stage(name=name, base=words[0]))
            elif not stages and instruction.keyword == "ARG":
                key, _, value = instruction.args.partition("=")
                global_args[key.strip()] = value.strip()
            else:
                stages[-1].instructions.append(instruction)
        return cls(path, global_args, stages)

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)

    def stage_names(self) -> list[str]:
        return [s.name for s in self.stages if s.name]

    def chain(self, name: str) -> list[Stage]:
        """The stage and the stages it is built FROM, base first."""
        stage = self.stage(name)
        base = self.expand(stage.base, {})
        parent = [s for s in self.stages if s.name == base]
        return [*self.chain(base), stage] if parent else [stage]

    def instructions(self, name: str) -> list[Instruction]:
        return [i for s in self.chain(name) for i in s.instructions]

    def variables(self, name: str) -> dict[str, str]:
        """ARG and ENV defaults in force at the end of a stage (ARG needs a re-declaration)."""
        values: dict[str, str] = {}
        for instruction in self.instructions(name):
            if instruction.keyword == "ARG":
                key, sep, value = instruction.args.partition("=")
                key = key.strip()
                values[key] = (
                    self.expand(value.strip(), values) if sep else (self.global_args.get(key, ""))
                )
            elif instruction.keyword == "ENV":
                for pair in shlex.split(instruction.args):
                    key, _, value = pair.partition("=")
                    values[key] = self.expand(value, values)
        return values

    def user(self, name: str) -> str | None:
        """The user a stage's container runs as, ARGs resolved (None: the base image's)."""
        users = [i for i in self.instructions(name) if i.keyword == "USER"]
        if not users:
            return None
        return self.expand(users[-1].args, self.variables(name))

    def expand(self, text: str, values: dict[str, str]) -> str:
        scope = {**self.global_args, **values}
        return _VAR.sub(lambda m: scope.get(m.group(1) or m.group(2), m.group(0)), text)


def _instructions(text: str) -> list[Instruction]:
    found: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue  # comments (parser directives included) and blank lines
        if not pending:
            start = number
        continued = stripped.endswith("\\")
        pending.append(stripped[:-1].strip() if continued else stripped)
        if not continued:
            keyword, _, args = " ".join(pending).partition(" ")
            found.append(Instruction(keyword.upper(), args.strip(), start))
            pending = []
    return found

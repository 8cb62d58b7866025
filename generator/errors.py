"""One exception root; the CLI is the only place that turns these into messages and exit codes."""

from __future__ import annotations

from dataclasses import dataclass


class PitrBundleError(Exception):
    """Root of every error this tool raises on purpose."""

    exit_code = 1


@dataclass(frozen=True)
class SpecProblem:
    """One thing wrong with one spec, located as precisely as the YAML allows."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.message}"


class SpecError(PitrBundleError):
    """The specs are wrong; carries every problem found, not just the first."""

    exit_code = 2

    def __init__(self, problems: list[SpecProblem]):
        self.problems = sorted(problems, key=lambda p: (p.file, p.line or 0, p.field, p.message))
        super().__init__("\n".join(str(p) for p in self.problems))


class UsageError(PitrBundleError):
    """The command line or the bundle folder given is wrong."""

    exit_code = 2

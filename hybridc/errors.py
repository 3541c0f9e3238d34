"""One error hierarchy for the whole pipeline, rendered once by the CLI.

- ``SpecError``: the spec is wrong. Carries every ``Diagnostic`` found (all at once), each located
  at FILE:LINE:COL. Exit status 2.
- ``CompileError``: a valid spec could not be turned into a graph or a model (e.g. weights missing).
- ``RunError``: something failed while running a plan (data, checkpoints, numerics).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Location:
    """A position in a source file; line and column are 1-based."""

    file: str
    line: int
    col: int

    def shifted(self, cols: int) -> "Location":
        return Location(self.file, self.line, self.col + cols)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class Diagnostic:
    """One problem found in a spec."""

    location: Location
    message: str
    hint: str | None = None
    severity: str = "error"

    def render(self) -> str:
        """One line per diagnostic, always located: line breaks inside a message or hint (from a file's
        contents or a library's error) are shown as spaces."""
        text = f"{self.location}: {self.severity}: {' '.join(self.message.split())}"
        if self.hint:
            text += f" (hint: {' '.join(self.hint.split())})"
        return text


class HybridcError(Exception):
    """Base of every error hybridc raises on purpose."""

    exit_code = 1

    def render(self) -> str:
        return f"error: {self}"


class SpecError(HybridcError):
    """The spec is invalid; ``diagnostics`` lists every problem found, sorted by position."""

    exit_code = 2

    def __init__(self, diagnostics: list[Diagnostic] | tuple[Diagnostic, ...]):
        if not diagnostics:
            raise ValueError("SpecError needs at least one diagnostic")
        self.diagnostics = tuple(
            sorted(diagnostics, key=lambda d: (d.location.file, d.location.line, d.location.col))
        )
        super().__init__("\n".join(d.render() for d in self.diagnostics))
        self.warnings: tuple[Diagnostic, ...] = ()
        self.partial = None  # the front end's ParsedSpec of the parts without problems, to check further

    def render(self) -> str:
        n = len(self.diagnostics)
        summary = f"{n} error{'s' if n != 1 else ''} found"
        return "\n".join(d.render() for d in self.diagnostics) + f"\n{summary}"


class CompileError(HybridcError):
    """A valid spec could not be compiled (graph, lowering or weight loading failed)."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None):
        self.hint = hint
        super().__init__(message)

    def render(self) -> str:
        text = f"error: {self}"
        if self.hint:
            text += f" (hint: {self.hint})"
        return text


class RunError(CompileError):
    """Running a training plan failed."""

    exit_code = 1


class PathRefused(RunError):
    """hybridc will not write to, through or over a path it did not create (a user's file, directory or
    symbolic link where it was asked to write): the user chooses another path. Exit status 2."""

    exit_code = 2


class LaunchError(RunError):
    """A run started in a way it cannot train as asked (a launcher that started fewer processes than it says)."""

    exit_code = 2


class Interrupted(RunError):
    """A run stopped on SIGINT/SIGTERM after writing a checkpoint (``--resume`` continues it)."""

    exit_code = 130


def first_line(err: BaseException, default: str = "no details") -> str:
    """The first line of an exception's message, for a one-line error (``default`` when it has none)."""
    text = str(err).strip()
    return text.splitlines()[0] if text else default

"""Where a spec's text comes from: a file, or ``git:REV:path`` (a file as committed)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ..errors import Diagnostic, Location, SpecError
from .frontend import ParsedSpec, parse_document
from .load import load_file, parse_text


def git_root(cwd: Path | None = None) -> Path | None:
    done = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=cwd, capture_output=True, text=True)
    return Path(done.stdout.strip()) if done.returncode == 0 else None


def parse_source(ref: str) -> ParsedSpec:
    """Parse ``ref``: a path, or ``git:REV:path`` read with ``git show`` from the current repository
    (relative paths inside it then resolve against the working tree beside that path)."""
    if ref.startswith("git:"):
        rev, sep, path = ref[4:].partition(":")
        if not sep or not rev or not path:
            raise SpecError([Diagnostic(Location(ref, 1, 1), f"'{ref}' is not git:REV:path", "e.g. git:HEAD~1:specs/a.yaml")])
        if rev.startswith("-"):  # never an option of git's (git:--output=FILE:... would make git write a file)
            raise SpecError([Diagnostic(Location(ref, 1, 1), f"'{rev}' is not a revision",
                                        "a revision does not start with '-'; e.g. git:HEAD~1:specs/a.yaml")])
        root = git_root()
        if root is None:
            raise SpecError([Diagnostic(Location(ref, 1, 1), "not inside a git repository", "run it in your repository")])
        try:
            relative = (Path.cwd() / path).resolve().relative_to(root) if not path.startswith("/") else Path(path)
        except ValueError:
            raise SpecError([Diagnostic(Location(ref, 1, 1), f"'{path}' is outside the repository at {root}",
                                        "give a path inside the repository")]) from None
        done = subprocess.run(["git", "show", "--end-of-options", f"{rev}:{relative.as_posix()}"], cwd=root,
                              capture_output=True)
        if done.returncode != 0:
            reason = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["git show failed"]
            raise SpecError([Diagnostic(Location(ref, 1, 1), f"cannot read {ref}: {reason[0]}",
                                        "check the revision and the path")])
        return parse_document(parse_text(done.stdout, file=ref, path=root / relative))
    return parse_document(load_file(ref))

"""A run directory as hybridc writes it, and what it refuses to write into (torch-free).

``check_run_directory`` holds the refusals that need no model: a directory that is not a run, a run without
``--resume``, entries that are not what hybridc wrote, a lock that is not hybridc's, a changed spec. ``hybridc
train`` runs it before it imports torch (a refusal comes at once, not after the model is compiled), and the
run runs it again when it takes the directory.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml

from ..errors import RunError, first_line
from ..io import PathRefused, mode_kind, open_regular, read_regular_text
from ..spec.frontend import locked_spec

LOCK_FILE = ".lock"
LOGS = "logs"  # RUN/logs: what local experiment trackers write (tracking.py)
FRESH_FILES = ("spec.yaml", "spec.lock.yaml", "plan.json", "graph.dot", "metrics.jsonl", "plots", LOGS)  # a new run's
RUN_FILES = ("spec.yaml", "spec.lock.yaml", "plan.json", "graph.dot", "metrics.jsonl", "plots/loss.png",
             "plots/alphas.png")  # what a run writes as files, and as directories:
RUN_DIRECTORIES = ("plots", "checkpoints", "final", "teacher", LOGS)


def is_lock_text(text: str | bytes) -> bool:
    """What hybridc writes in RUN/.lock: ``hybridc process PID`` (or nothing yet: a process stopped
    between creating the file and writing it)."""
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    text = text.removesuffix("\n")
    return text == "" or (text.startswith("hybridc process ") and text[16:].isdigit() and text[16:].isascii())


def run_directory(out_dir: Path | None, name: str) -> Path:
    """Where a run of the spec called ``name`` goes: ``-o DIR``, else ``runs/<name>``."""
    return Path(out_dir) if out_dir is not None else Path("runs") / name


def lock_refused(path: Path, what: str) -> RunError:
    """The refusal of ``path`` (RUN/.lock), which is ``what`` instead of a lock hybridc wrote."""
    return PathRefused(f"{path} is {what}; hybridc keeps its run lock there and does not open, overwrite "
                       "or remove anything else", f"move {path} away, or train into another directory with -o")


def lock_refusal(path: Path) -> RunError | None:
    """Why ``path`` (RUN/.lock) is not a lock hybridc wrote: None if it is absent or one of ours. A
    directory holding a .lock that is not ours is not an empty directory (nor a run to resume)."""
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):  # (no run directory yet, or not a directory at all)
        return None
    except OSError as err:
        return lock_refused(path, f"unreadable ({err.strerror})")
    if stat.S_ISLNK(mode):
        return lock_refused(path, "a symbolic link")
    if stat.S_ISDIR(mode):
        return lock_refused(path, "a directory")
    if not stat.S_ISREG(mode):
        return lock_refused(path, "not a regular file")
    try:
        with open_regular(path, follow_links=False) as f:
            text = f.read(64)
    except OSError as err:
        return lock_refused(path, f"a file hybridc cannot read ({err.strerror})")
    return None if is_lock_text(text) else lock_refused(path, "a file hybridc did not write")


def foreign_run_entries(d: Path) -> list[str]:
    """What stands in run directory ``d`` where the run writes, but is not what it would have written: a
    symbolic link, a directory or a FIFO (...) where it writes a file, anything but a directory where it
    writes one. Each said as ``NAME is WHAT``."""
    found = []
    for name, directory in [*((n, False) for n in RUN_FILES), *((n, True) for n in RUN_DIRECTORIES)]:
        try:
            mode = os.lstat(d / name).st_mode
        except (FileNotFoundError, NotADirectoryError):
            continue
        wanted = stat.S_ISDIR(mode) if directory else stat.S_ISREG(mode)
        if stat.S_ISLNK(mode) or not wanted:
            found.append(f"{name} is {mode_kind(mode)}" + ("" if stat.S_ISLNK(mode) else
                                                            f", not a {'directory' if directory else 'file'}"))
    return found


def read_lock_file(path: Path) -> Any:
    """A run's spec.lock.yaml as YAML data (None when absent); a ``RunError`` when it is not a regular file
    hybridc could have written (a link, a FIFO, ...) or not YAML."""
    try:
        return yaml.safe_load(read_regular_text(path, follow_links=False))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, RecursionError, yaml.YAMLError) as err:
        if isinstance(err, RecursionError):
            reason = "nested too deeply"
        elif isinstance(err, OSError) and err.strerror:
            reason = err.strerror
        else:
            reason = first_line(err, type(err).__name__)
        raise RunError(f"{path} cannot be read as the run's lock ({reason})",
                       "it is not the spec.lock.yaml hybridc wrote; resume a run hybridc wrote, or start a new "
                       "one with -o") from None


def is_run_directory(d: Path) -> bool:
    """``d`` holds a run hybridc wrote: a spec.lock.yaml with a lock in it, or checkpoints with state."""
    try:
        lock = read_lock_file(d / "spec.lock.yaml")
    except RunError:
        lock = None
    if isinstance(lock, dict) and "hybridc_lock" in lock:
        return True
    return any((p / "state.json").is_file() for p in (d / "checkpoints").glob("step-*")) if (d / "checkpoints").is_dir() else False


def same_spec(old_lock: dict, new_lock: dict) -> bool:
    """Two locks hold the same canonical spec, components in the same order (the order is part of the model)."""
    old, new = locked_spec(old_lock), locked_spec(new_lock)
    return old == new and list(old["components"]) == list(new["components"])


def check_run_directory(d: Path, lock: dict, resume: bool) -> None:
    """Refuse, before anything is written, a run directory ``d`` hybridc must not train the spec of ``lock``
    into: a ``.lock`` that is not hybridc's, a non-empty directory that holds no run, a run without ``resume``,
    a run whose entries are not what hybridc wrote, or one started for another spec."""
    if (refusal := lock_refusal(d / LOCK_FILE)) is not None:  # (so a .lock left is one of ours)
        raise refusal
    if not (d.exists() and any(p.name != LOCK_FILE for p in d.iterdir())):
        return
    if not is_run_directory(d):
        raise RunError(f"{d} is not empty and holds no hybridc run (no spec.lock.yaml or checkpoints "
                       "written by hybridc)", "choose another output directory with -o; hybridc never "
                       "writes over files it did not create")
    if not resume:
        raise RunError(f"{d} already holds a run", "add --resume to continue it, or -o to start a new one")
    if foreign := foreign_run_entries(d):
        raise PathRefused(f"{d} is not as hybridc left it: {'; '.join(foreign)}",
                          "move them away (hybridc neither writes through nor replaces what it did not "
                          "create), then resume")
    old_lock = read_lock_file(d / "spec.lock.yaml")
    if old_lock is not None and not same_spec(old_lock, lock):
        raise RunError(f"the spec changed since the run in {d} started",
                       "resume with the original spec, or start a new run with -o")

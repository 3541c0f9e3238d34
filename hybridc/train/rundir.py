"""A run directory as hybridc writes it, and what it refuses to write into (torch-free).

The names a run writes (``RUN_FILES``, ``RUN_DIRECTORIES``, the trees replaced whole) live here, and so do
the refusals that need no model: a directory that is not a run, a run without ``--resume``, entries that are
not what hybridc wrote (at any depth, ``GuardedDir.foreign_entries``), a lock that is not hybridc's, a changed
spec (``check_run_directory``). ``hybridc train`` runs them before it imports torch (``check_run_path``: a
refusal comes at once, not after the model is compiled), and the run runs them again on the directory it has
opened (``hybridc.io.guarded_dir``: nothing below the run directory is followed through a link).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml

from ..errors import PathRefused, RunError, first_line
from ..io.guarded_dir import GuardedDir
from ..spec.frontend import locked_spec

LOCK_FILE = ".lock"
LOCK = "spec.lock.yaml"
CHECKPOINTS = "checkpoints"
TEACHER = "teacher"  # RUN/teacher/checkpoints/step-N: the continuous hybrid distill stages learn from
FINAL, FINAL_STAGING, FINAL_OLD = "final", ".final-tmp", ".final-old"  # final/ is built beside, then swapped in
BASELINES = "baselines"
LOGS = "logs"  # RUN/logs: what local experiment trackers write (tracking.py)
FRESH_FILES = ("spec.yaml", LOCK, "plan.json", "graph.dot", "metrics.jsonl", "plots", LOGS)  # a new run's
RUN_FILES = ("spec.yaml", LOCK, "plan.json", "graph.dot", "metrics.jsonl", "plots/loss.png",
             "plots/alphas.png")  # what a run writes as files, and as directories:
RUN_DIRECTORIES = ("plots", CHECKPOINTS, f"{TEACHER}/{CHECKPOINTS}", BASELINES, LOGS)
RUN_TREES = (FINAL, FINAL_STAGING, FINAL_OLD, TEACHER)  # replaced or removed whole: only hybridc's files inside


def run_directory(out_dir: Path | None, name: str) -> Path:
    """Where a run of the spec called ``name`` goes: ``-o DIR``, else ``runs/<name>``."""
    return Path(out_dir) if out_dir is not None else Path("runs") / name


def step_number(name: str) -> int | None:
    """N of a directory name ``step-N``, else None."""
    return int(name[5:]) if name.startswith("step-") and name[5:].isdigit() and name[5:].isascii() else None


def checkpoint_names(root: GuardedDir) -> list[str]:
    """The ``step-N`` directories of a ``checkpoints/`` directory, newest first (a link or a file named so is
    not one of hybridc's: never listed, so never read nor removed)."""
    found = [name for name in root.names() if step_number(name) is not None and root.is_dir(name)]
    return sorted(found, key=step_number, reverse=True)


def checkpoint_dirs_of(run: GuardedDir) -> list[Path]:
    """The run's checkpoint directories, newest first (none when ``checkpoints`` is absent or not a directory
    of its own: ``foreign_run_entries`` says so)."""
    try:
        with run.child(CHECKPOINTS) as root:
            return [root.path / name for name in checkpoint_names(root)]
    except (FileNotFoundError, PathRefused):
        return []


# ---- the lock ---------------------------------------------------------------------------------------------
def is_lock_text(text: str | bytes) -> bool:
    """What hybridc writes in RUN/.lock: ``hybridc process PID`` (or nothing yet: a process stopped
    between creating the file and writing it)."""
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    text = text.removesuffix("\n")
    return text == "" or (text.startswith("hybridc process ") and text[16:].isdigit() and text[16:].isascii())


def lock_refused(path: Path, what: str) -> RunError:
    """The refusal of ``path`` (RUN/.lock), which is ``what`` instead of a lock hybridc wrote."""
    return PathRefused(f"{path} is {what}; hybridc keeps its run lock there and does not open, overwrite "
                       "or remove anything else", f"move {path} away, or train into another directory with -o")


def lock_refusal(run: GuardedDir) -> RunError | None:
    """Why RUN/.lock is not a lock hybridc wrote: None if it is absent or one of ours. A directory holding
    a .lock that is not ours is not an empty directory (nor a run to resume)."""
    path = run.path / LOCK_FILE
    try:
        info = run.lstat(LOCK_FILE)
    except OSError as err:
        return lock_refused(path, f"unreadable ({err.strerror})")
    if info is None:
        return None
    mode = info.st_mode
    if stat.S_ISLNK(mode):
        return lock_refused(path, "a symbolic link")
    if stat.S_ISDIR(mode):
        return lock_refused(path, "a directory")
    if not stat.S_ISREG(mode):
        return lock_refused(path, "not a regular file")
    try:
        with run.open_read(LOCK_FILE) as f:
            text = f.read(64)
    except OSError as err:
        return lock_refused(path, f"a file hybridc cannot read ({err.strerror})")
    return None if is_lock_text(text) else lock_refused(path, "a file hybridc did not write")


# ---- what a run directory holds -----------------------------------------------------------------------------
def foreign_run_entries(run: GuardedDir) -> list[str]:
    """What stands in a run directory where the run writes, but is not what it would have written, each said as
    ``NAME is WHAT``: a symbolic link, a directory or a FIFO (...) where it writes a file, anything but a
    directory where it writes one (``teacher/checkpoints`` too, below ``teacher``), and anything but files
    and directories inside ``final/``, its staging directories and ``teacher/``, which are replaced or removed
    whole."""
    return run.foreign_entries(files=RUN_FILES, directories=RUN_DIRECTORIES, trees=RUN_TREES)


def read_lock_file(run: GuardedDir) -> Any:
    """A run's spec.lock.yaml as YAML data (None when absent); a ``RunError`` when it is not a regular file
    hybridc could have written (a link, a FIFO, ...) or not YAML."""
    path = run.path / LOCK
    try:
        return yaml.safe_load(run.read_text(LOCK))
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


def is_run_directory(run: GuardedDir) -> bool:
    """``run`` holds a run hybridc wrote: a spec.lock.yaml with a lock in it, or checkpoints with state."""
    try:
        lock = read_lock_file(run)
    except RunError:
        lock = None
    if isinstance(lock, dict) and "hybridc_lock" in lock:
        return True
    return any(run.is_file(f"{CHECKPOINTS}/{path.name}/state.json") for path in checkpoint_dirs_of(run))


def same_spec(old_lock: dict, new_lock: dict) -> bool:
    """Two locks hold the same canonical spec, components in the same order (the order is part of the model)."""
    old, new = locked_spec(old_lock), locked_spec(new_lock)
    return old == new and list(old["components"]) == list(new["components"])


def check_run_directory(run: GuardedDir, lock: dict, resume: bool) -> None:
    """Refuse, before anything is written, a run directory hybridc must not train the spec of ``lock`` into: a
    ``.lock`` that is not hybridc's, a non-empty directory that holds no run, a run without ``resume``, a run
    whose entries are not what hybridc wrote (at any depth), or one started for another spec."""
    if (refusal := lock_refusal(run)) is not None:  # (so a .lock left is one of ours)
        raise refusal
    if not any(name != LOCK_FILE for name in run.names()):
        return
    d = run.path
    if not is_run_directory(run):
        raise RunError(f"{d} is not empty and holds no hybridc run (no spec.lock.yaml or checkpoints "
                       "written by hybridc)", "choose another output directory with -o; hybridc never "
                       "writes over files it did not create")
    if not resume:
        raise RunError(f"{d} already holds a run", "add --resume to continue it, or -o to start a new one")
    if foreign := foreign_run_entries(run):
        raise PathRefused(f"{d} is not as hybridc left it: {'; '.join(foreign)}",
                          "move them away (hybridc neither writes through nor replaces what it did not "
                          "create), then resume")
    old_lock = read_lock_file(run)
    if old_lock is not None and not same_spec(old_lock, lock):
        raise RunError(f"the spec changed since the run in {d} started",
                       "resume with the original spec, or start a new run with -o")


def check_run_path(d: Path, lock: dict, resume: bool) -> None:
    """``check_run_directory`` for the path a user named, opened read-only (nothing is made): nothing there
    is fine; a link, a file or a FIFO where the directory belongs is refused (``GuardedDir.open``)."""
    if not os.path.lexists(d):
        return
    with GuardedDir.open(d) as run:
        check_run_directory(run, lock, resume)

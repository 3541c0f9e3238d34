#!/usr/bin/env python
"""Walk the README as a new user does: every command of its ```bash blocks, in order, in one shell, in a fresh
copy of the repository; fail on a non-zero exit the README does not announce.

The shell is one bash session (so ``. .venv/bin/activate`` in the first block holds for the rest, as in a
user's terminal), started outside any virtualenv, in a fresh directory holding the repository's files (those
git tracks or would track, as they are in the working tree) committed into a new git repository (so the git
commands work as in a clone).

What a command may do is said beside its block, in an HTML comment on the line before the fence (invisible
on GitHub), directives separated by ``;``, each giving the block's command numbers (from 1; ``all``) and why:

    <!-- walk: skip 3,4 (GPUs; several machines) -->    cannot run here: never run
    <!-- walk: slow 2 (the default suite) -->            run with --all only
    <!-- walk: exit 1 at 2 (no tokenizer: the README says so) -->   announced: exits 1

Every other command must exit 0. ``--quick`` caps every ``hybridc train`` at ``--max-steps 110`` (past the
quickstart's first evaluation and checkpoint inside a stage; the commands still run in order, each on what the
one before left, but the numbers are not the README's): what CI's long part runs. Without it the walk takes as
long as a user's (the trainings in full).

Usage: ``python scripts/readme_walk.py [--quick] [--all] [--keep] [--dir DIR] [--verbose] [--list]``.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# --quick's cap: past the quickstart's first evaluation and checkpoint inside a stage (step 100), where a run
# does everything it does (a walk capped at 20 steps missed a failure there), in about half the time
QUICK_STEPS = 110
DIRECTIVE = re.compile(r"^\s*(skip|slow|exit\s+(\d+)\s+at)\s+(all|\d+(?:\s*,\s*\d+)*)\s*\((.+)\)\s*$")


@dataclass(frozen=True)
class Command:
    block: int  # 1-based, among the README's bash blocks
    number: int  # 1-based, within its block
    line: int  # in the README
    text: str
    action: str = "run"  # run | skip | slow
    exit: int = 0  # the exit status the README announces
    reason: str = ""

    @property
    def where(self) -> str:
        return f"README.md:{self.line} (block {self.block}, command {self.number})"


class WalkError(Exception):
    pass


def _directives(comment: str, line: int) -> dict[int | str, tuple[str, int, str]]:
    """``skip 3,4 (why); exit 1 at 2 (why)`` -> {3: ("skip", 0, why), 4: ..., 2: ("run", 1, why)}."""
    out: dict[int | str, tuple[str, int, str]] = {}
    for part in _split(comment):
        match = DIRECTIVE.match(part)
        if match is None:
            raise WalkError(f"README.md:{line}: cannot read the walk directive {part.strip()!r} (expected "
                            "'skip N,M (why)', 'slow N (why)' or 'exit CODE at N (why)')")
        kind, code, numbers, reason = match.groups()
        action = "run" if kind.startswith("exit") else kind
        for n in (["all"] if numbers == "all" else [int(x) for x in numbers.split(",")]):
            out[n] = (action, int(code) if code else 0, reason.strip())
    return out


def _split(comment: str) -> list[str]:
    """Directives, split on ';' outside parentheses (a reason may hold one)."""
    depth, pieces, current = 0, [], ""
    for ch in comment:
        depth += ch == "("
        depth -= ch == ")"
        if ch == ";" and depth == 0:
            pieces.append(current)
            current = ""
        else:
            current += ch
    return [p for p in [*pieces, current] if p.strip()]


def commands(text: str) -> list[Command]:
    """Every command of the README's bash blocks, with what its block's walk directive says of it."""
    lines = text.splitlines()
    out: list[Command] = []
    block = 0
    i = 0
    while i < len(lines):
        if lines[i].strip() != "```bash":
            i += 1
            continue
        block += 1
        previous = lines[i - 1].strip() if i > 0 else ""
        found = re.fullmatch(r"<!--\s*walk:(.*)-->", previous)
        directives: dict = {}
        if found:
            directives = _directives(found.group(1), i)
        number = 0
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            start = i
            command = lines[i]
            while command.endswith("\\") and i + 1 < len(lines):
                i += 1
                command = command[:-1] + " " + lines[i].strip()
            i += 1
            if not command.strip() or command.lstrip().startswith("#"):
                continue
            number += 1
            action, code, reason = directives.get(number, directives.get("all", ("run", 0, "")))
            out.append(Command(block, number, start + 1, command.strip(), action, code, reason))
        unknown = [n for n in directives if n != "all" and n > number]
        if unknown:
            raise WalkError(f"README.md:{i}: the walk directive of block {block} names command {unknown[0]}, "
                            f"but the block has {number}")
        i += 1
    return out


def quick(command: str, steps: int = QUICK_STEPS) -> str:
    """``hybridc train ...`` (also under torchrun or accelerate launch) capped at ``--max-steps``."""
    if re.search(r"\bhybridc train\b", command) and "--max-steps" not in command:
        head, sep, comment = command.partition(" #")
        return f"{head.rstrip()} --max-steps {steps}" + (f"  #{comment}" if sep else "")
    return command


def fresh_copy(root: Path, target: Path) -> None:
    """The files of the repository at ``root`` (tracked, or untracked but not ignored) as its working tree has
    them, committed into a new git repository at ``target``."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = root / name
        if not source.exists() and not source.is_symlink():  # deleted in the working tree
            continue
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            destination.symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, destination)
    env = _git_env()
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "README walk"]):
        subprocess.run(["git", *args], cwd=target, check=True, env=env, capture_output=True)


def _git_env() -> dict[str, str]:
    return {**os.environ, "GIT_AUTHOR_NAME": "walk", "GIT_AUTHOR_EMAIL": "walk@example.com",
            "GIT_COMMITTER_NAME": "walk", "GIT_COMMITTER_EMAIL": "walk@example.com"}


def _shell_env() -> dict[str, str]:
    """This environment outside any virtualenv (the README's first command makes and activates its own)."""
    env = _git_env()
    venv = env.pop("VIRTUAL_ENV", None)
    if venv:
        env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                      if Path(p) != Path(venv) / "bin")
    for key in ("PYTHONPATH", "PYTHONHOME", "HYBRIDC_DEBUG"):
        env.pop(key, None)
    return env


def script(chosen: list[Command], status_file: Path, quick_steps: int | None) -> str:
    """One bash session: each command as written, then its status checked against the announced one."""
    out = ["set +e", f"__walk_status={shlex.quote(str(status_file))}"]
    for k, c in enumerate(chosen):
        text = quick(c.text, quick_steps) if quick_steps else c.text
        out += [f"echo {shlex.quote(f'::walk {k} $ {text}')}",
                text,
                "__s=$?",
                f'echo "{k} $__s" >> "$__walk_status"',
                f"[ $__s -eq {c.exit} ] || exit 99"]
    return "\n".join(out) + "\n"


def walk(args: argparse.Namespace) -> int:
    root = Path(args.repo).resolve()
    every = commands((root / "README.md").read_text())
    chosen = [c for c in every if c.action == "run" or (c.action == "slow" and args.all)]
    left = [c for c in every if c not in chosen]
    if args.list:
        for c in every:
            state = "run" if c in chosen else c.action
            print(f"{c.where}: [{state}{f', exit {c.exit}' if c.exit else ''}] {c.text}"
                  + (f"  ({c.reason})" if c.reason else ""))
        return 0
    directory = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="hybridc-readme-walk-"))
    directory.mkdir(parents=True, exist_ok=True)
    if any(directory.iterdir()):
        raise WalkError(f"{directory} is not empty: the walk starts in a fresh directory")
    repo = directory / "hybridc"
    repo.mkdir()
    fresh_copy(root, repo)
    status_file, log_file = directory / "status", directory / "walk.log"
    steps = (args.quick_steps or QUICK_STEPS) if args.quick or args.quick_steps else None
    (directory / "walk.sh").write_text(script(chosen, status_file, steps))
    print(f"walk: {len(chosen)} commands of README.md in {repo}{f' (trainings capped at {steps} steps)' if steps else ''}; "
          f"{len(left)} not run: " + "; ".join(f"{c.where} {c.action} ({c.reason})" for c in left))
    began = time.monotonic()
    with open(log_file, "w") as log:
        process = subprocess.Popen(["bash", str(directory / "walk.sh")], cwd=repo, env=_shell_env(),
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
        assert process.stdout is not None
        started = None
        for line in process.stdout:
            log.write(line)
            if line.startswith("::walk "):
                if started is not None:
                    print(f"walk:   ... {time.monotonic() - started:.0f} s", flush=True)
                started = time.monotonic()
                k = int(line.split()[1])
                print(f"walk: [{k + 1}/{len(chosen)}] {chosen[k].where}: {line.split(' $ ', 1)[1].rstrip()}",
                      flush=True)
            elif args.verbose:
                print(line, end="", flush=True)
        process.wait()
        if started is not None:
            print(f"walk:   ... {time.monotonic() - started:.0f} s", flush=True)
    statuses = dict(tuple(map(int, line.split())) for line in status_file.read_text().splitlines()) \
        if status_file.exists() else {}
    elapsed = time.monotonic() - began
    failed = next((k for k, c in enumerate(chosen) if statuses.get(k) not in (c.exit, None)), None)
    if failed is not None or len(statuses) != len(chosen):
        k = failed if failed is not None else len(statuses)
        c = chosen[k]
        tail = log_file.read_text(errors="replace").splitlines()[-40:]
        got = statuses.get(k)
        print("\n".join(tail), file=sys.stderr)
        print(f"walk: FAILED at {c.where}: `{c.text}` exited {got if got is not None else 'without a status'}"
              f"{'' if c.exit == 0 else f' (the README announces {c.exit})'}; the log is {log_file}, the "
              f"directory {repo}", file=sys.stderr)
        return 1
    print(f"walk: every command ran as the README says ({len(chosen)} in {elapsed / 60:.1f} min)")
    if not args.keep and not args.dir:
        shutil.rmtree(directory, ignore_errors=True)
    else:
        print(f"walk: kept {repo}")
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"cap every hybridc train at --max-steps {QUICK_STEPS}")
    parser.add_argument("--quick-steps", type=int, help="--quick with this cap instead")
    parser.add_argument("--all", action="store_true", help="also run the commands marked slow (the test suite)")
    parser.add_argument("--keep", action="store_true", help="keep the fresh directory after a walk that passed")
    parser.add_argument("--dir", help="walk in this (new or empty) directory instead of a temporary one")
    parser.add_argument("--verbose", action="store_true", help="show every command's output as it runs")
    parser.add_argument("--list", action="store_true", help="only list the commands and what the walk does of each")
    parser.add_argument("--repo", default=str(ROOT), help="the repository whose README.md is walked (default: this one)")
    try:
        return walk(parser.parse_args(argv))
    except WalkError as err:
        print(f"walk: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

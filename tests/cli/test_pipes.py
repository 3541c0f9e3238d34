"""Output into a pipe whose reader goes away (`| head`): hybridc stops quietly, as Unix tools do.

Real processes: the behaviour is the interpreter's and the shell's (Python ignores SIGPIPE, so a write to a
closed pipe raises), which an in-process runner does not have.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.specs import SMALL

ROOT = Path(__file__).resolve().parents[2]
SPECS = sorted(str(p) for p in (ROOT / "specs").glob("*.yaml"))
HYBRIDC = [sys.executable, "-m", "hybridc"]
EXIT_SIGPIPE = 141  # what a shell reports for `yes | head -1`'s yes


def _closed_pipe() -> int:
    """The write end of a pipe whose read end is already closed: every write to it fails with EPIPE."""
    read, write = os.pipe()
    os.close(read)
    return write


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "HYBRIDC_DEBUG"}
    return {**env, "PYTHONPATH": str(ROOT), **extra}


def test_fmt_into_a_closed_pipe_stops_quietly():
    write = _closed_pipe()
    try:
        done = subprocess.run([*HYBRIDC, "fmt", *SPECS], stdout=write, stderr=subprocess.PIPE, text=True,
                              env=_env(), timeout=120)
    finally:
        os.close(write)
    assert done.stderr == "" and done.returncode == EXIT_SIGPIPE, (done.returncode, done.stderr)


def test_fmt_piped_to_head_as_a_shell_does():
    """`hybridc fmt specs/*.yaml | head -1` with more output than a pipe holds (so a write must fail)."""
    many = " ".join(f"'{p}'" for p in SPECS * 12)  # ~170 kB, past the pipe's 64 kB and head's read
    script = f"{' '.join(HYBRIDC)} fmt {many} | head -1; echo \"status ${{PIPESTATUS[0]}}\" >&2"
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=_env(), timeout=120, cwd=ROOT)
    assert done.stdout.startswith("# yaml-language-server") and done.stdout.count("\n") == 1, done.stdout
    assert done.stderr == f"status {EXIT_SIGPIPE}\n", done.stderr


def test_rich_output_into_a_closed_pipe_stops_quietly(tmp_path):
    """diff prints through rich, which would end the process itself (status 1) on a closed pipe."""
    (tmp_path / "a.yaml").write_text(SMALL)
    (tmp_path / "b.yaml").write_text(SMALL.replace("steps: 5", "steps: 6"))
    write = _closed_pipe()
    try:
        done = subprocess.run([*HYBRIDC, "diff", "a.yaml", "b.yaml"], stdout=write, stderr=subprocess.PIPE,
                              text=True, env=_env(), timeout=120, cwd=tmp_path)
    finally:
        os.close(write)
    assert done.stderr == "" and done.returncode == EXIT_SIGPIPE, (done.returncode, done.stderr)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_diff_piped_to_head_never_says_the_driver_died(tmp_path):
    env = _env(HOME=str(tmp_path), GIT_CONFIG_NOSYSTEM="1", GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@x",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@x")

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=tmp_path, capture_output=True, text=True, env=env, check=True)

    git("init", "-q")
    (tmp_path / "specs").mkdir()
    for i in range(2):
        (tmp_path / "specs" / f"s{i}.yaml").write_text(SMALL)
    git("add", ".")
    git("commit", "-qm", "specs")
    git("config", "diff.hybridc.command", f"{sys.executable} -m hybridc diff --git-driver")
    (tmp_path / ".gitattributes").write_text("specs/*.yaml diff=hybridc\n")
    for i in range(2):  # two files: git goes on to the next driver after the first one's reader is gone
        (tmp_path / "specs" / f"s{i}.yaml").write_text(SMALL.replace("steps: 5", "steps: 6"))
    # the reader gone before the first line: every driver's write fails
    write = _closed_pipe()
    try:
        done = subprocess.run(["git", "diff"], cwd=tmp_path, stdout=write, stderr=subprocess.PIPE, text=True,
                              env=env, timeout=120)
    finally:
        os.close(write)
    assert "died" not in done.stderr and "error" not in done.stderr, done.stderr
    # as a user types it
    piped = subprocess.run(["bash", "-c", "git diff | head -1"], cwd=tmp_path, capture_output=True, text=True,
                           env=env, timeout=120)
    assert piped.stdout == "hybridc diff a/specs/s0.yaml b/specs/s0.yaml\n" and piped.stderr == "", piped.stderr

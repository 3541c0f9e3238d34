"""git integration: `hybridc git-setup` makes `git diff` and `git log -p` show semantic diffs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from hybridc.cli import main
from tests.specs import SMALL


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@x", "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(repo)}
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def repo(tmp_path, monkeypatch):
    git(tmp_path, "init", "-q")
    (tmp_path / "specs").mkdir()
    spec = tmp_path / "specs" / "hybrid.yaml"
    spec.write_text(SMALL)
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "first")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def test_git_setup_and_semantic_git_diff(repo):
    result = CliRunner().invoke(main, ["git-setup"])
    assert result.exit_code == 0, result.output
    assert "specs/**/*.yaml diff=hybridc" in (repo / ".gitattributes").read_text()
    assert "diff --git-driver" in git(repo, "config", "diff.hybridc.command")
    again = CliRunner().invoke(main, ["git-setup"])
    assert (repo / ".gitattributes").read_text().count("diff=hybridc") == 2 and again.exit_code == 0

    spec = repo / "specs" / "hybrid.yaml"
    spec.write_text("# a comment only changes nothing\n" + SMALL)
    assert "no semantic change" in git(repo, "diff")
    spec.write_text(SMALL.replace("[0.25, 0.75]]", "[0.5, 0.5]]").replace("steps: 5", "steps: 9"))
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "second")
    shown = git(repo, "diff", "HEAD~1", "HEAD", "--", "specs/hybrid.yaml")
    assert "hybridc diff a/specs/hybrid.yaml b/specs/hybrid.yaml" in shown
    assert "hybrid.mixture[1]: [0.25, 0.75] -> [0.5, 0.5]  (attn +0.25, ssm -0.25)" in shown
    assert "train.stages[align].steps: 5 -> 9" in shown
    log = git(repo, "log", "-p", "--ext-diff", "-1", "--", "specs/hybrid.yaml")
    assert "hybrid.mixture[1]" in log
    plain_log = git(repo, "log", "-p", "-1", "--", "specs/hybrid.yaml")  # textconv: canonical forms
    assert "-  mixture: fixed([[0.5, 0.5], [0.25, 0.75]])" in plain_log
    assert "+  mixture: fixed([[0.5, 0.5], [0.5, 0.5]])" in plain_log


def test_diff_against_a_git_revision(repo):
    spec = repo / "specs" / "hybrid.yaml"
    spec.write_text(SMALL.replace("seed", "seed").replace("hybrid:\n", "hybrid:\n  width: 40\n"))
    result = CliRunner().invoke(main, ["diff", "git:HEAD:specs/hybrid.yaml", "specs/hybrid.yaml"])
    assert result.exit_code == 1 and "hybrid.width: max -> 40" in result.output
    result = CliRunner().invoke(main, ["diff", "git:nope:specs/hybrid.yaml", "specs/hybrid.yaml"])
    assert result.exit_code == 2 and "cannot read git:nope:specs/hybrid.yaml" in result.output


def test_a_git_reference_never_passes_options_to_git(repo):
    """git:--output=FILE:path would make `git show` write FILE; a path outside the repository is an error."""
    spec = repo / "specs" / "hybrid.yaml"
    for ref in ("git:--output=out.txt:specs/hybrid.yaml", "git:-p:specs/hybrid.yaml"):
        result = CliRunner().invoke(main, ["diff", ref, "specs/hybrid.yaml"])
        assert result.exit_code == 2 and "is not a revision" in result.output, result.output
    assert not (repo / "out.txt").exists() and not (repo / "specs" / "out.txt").exists()
    outside = CliRunner().invoke(main, ["diff", "git:HEAD:../../outside.yaml", str(spec)])
    assert outside.exit_code == 2 and "outside the repository" in outside.output, outside.output


def test_pre_commit_hooks_are_declared():
    import yaml

    hooks = yaml.safe_load((Path(__file__).resolve().parents[1] / ".pre-commit-hooks.yaml").read_text())
    by_id = {h["id"]: h for h in hooks}
    assert by_id["hybridc-validate"]["entry"] == "hybridc validate"
    assert by_id["hybridc-fmt"]["entry"] == "hybridc fmt --check"

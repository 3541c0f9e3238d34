"""git integration: `hybridc git-setup` makes `git diff` and `git log -p` show semantic diffs."""

from __future__ import annotations

import json
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
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, env=env, check=False)
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
    # every key of the language, the budget and the data's seed included (tests/graph/test_diff_schema.py walks all)
    committed = spec.read_text()
    spec.write_text(committed.replace("hybrid:\n", "hybrid:\n  budget: {params: 0.9x}\n")
                    .replace("train:\n", "train:\n  data_seed: 3\n"))
    worktree = git(repo, "diff")
    assert "hybrid.budget: added {params: 0.9x}" in worktree and "train.data_seed: added 3" in worktree, worktree


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

    hooks = yaml.safe_load((Path(__file__).resolve().parents[2] / ".pre-commit-hooks.yaml").read_text())
    by_id = {h["id"]: h for h in hooks}
    assert by_id["hybridc-validate"]["entry"] == "hybridc validate"
    assert by_id["hybridc-fmt"]["entry"] == "hybridc fmt --check"


def test_git_diff_of_an_invalid_spec_is_a_text_diff_with_the_errors(repo):
    """Mid-edit a spec is often invalid: git diff still shows what changed (as text), and says why."""
    assert CliRunner().invoke(main, ["git-setup"]).exit_code == 0
    spec = repo / "specs" / "hybrid.yaml"
    spec.write_text(SMALL.replace("steps: 5", "steps: nope"))
    shown = git(repo, "diff")  # git() asserts exit 0: git stops at a driver that fails
    assert "hybridc diff a/specs/hybrid.yaml b/specs/hybrid.yaml" in shown
    assert ("# hybridc: new spec is invalid: b/specs/hybrid.yaml:15:65: error: 'train.stages[0].steps' must be an "
            "integer") in shown
    assert "--- a/specs/hybrid.yaml\n+++ b/specs/hybrid.yaml\n@@ " in shown
    assert '\n-    - {name: align, data: "recall(vocab=16, length=16)", steps: 5}\n' in shown
    assert '\n+    - {name: align, data: "recall(vocab=16, length=16)", steps: nope}\n' in shown
    assert shown.index("# hybridc: new spec") < shown.index("--- a/specs/hybrid.yaml")
    assert "Traceback" not in shown

    # both sides invalid, an added invalid file, a deleted one and a binary one, in one commit and in git log -p
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "invalid")
    spec.write_text(SMALL.replace("steps: 5", "steps: still-not"))
    (repo / "specs" / "added.yaml").write_text("hybridc: 1\nname: [\n")
    (repo / "specs" / "binary.yaml").write_bytes(b"\xff\xfe\x00\x01")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "more")
    log = git(repo, "log", "-p", "--ext-diff", "-1")
    assert "# hybridc: old spec is invalid: a/specs/hybrid.yaml:15:65" in log
    assert "# hybridc: new spec is invalid: b/specs/hybrid.yaml:15:65" in log
    assert "-    - {name: align" in log and "steps: still-not}" in log
    assert "--- /dev/null\n+++ b/specs/added.yaml\n@@ -0,0 +1,2 @@\n+hybridc: 1\n+name: [\n" in log
    assert "# hybridc: new spec is invalid: b/specs/binary.yaml:1:1: error: the spec is not valid UTF-8" in log
    assert "Binary files /dev/null and b/specs/binary.yaml differ" in log
    git(repo, "rm", "-q", "specs/added.yaml")
    deleted = git(repo, "diff", "--cached")
    assert "# hybridc: old spec is invalid: a/specs/added.yaml:3:1" in deleted
    assert "--- a/specs/added.yaml\n+++ /dev/null\n@@ -1,2 +0,0 @@\n-hybridc: 1\n-name: [\n" in deleted
    assert "Traceback" not in log + deleted


def test_hybridc_diff_of_an_invalid_spec_prints_a_text_diff_and_the_errors(repo):
    spec = repo / "specs" / "hybrid.yaml"
    spec.write_text(SMALL.replace("steps: 5", "steps: nope"))
    result = CliRunner().invoke(main, ["diff", "git:HEAD:specs/hybrid.yaml", "specs/hybrid.yaml"])
    assert result.exit_code == 2, result.output  # an invalid spec is still an error
    assert result.stdout.startswith("--- git:HEAD:specs/hybrid.yaml\n+++ specs/hybrid.yaml\n@@ ")
    assert "\n-    - {name: align, data: \"recall(vocab=16, length=16)\", steps: 5}\n" in result.stdout
    assert "\n+    - {name: align, data: \"recall(vocab=16, length=16)\", steps: nope}\n" in result.stdout
    assert "specs/hybrid.yaml:15:65: error: 'train.stages[0].steps' must be an integer" in result.stderr
    assert "text diff is shown instead" in result.stderr
    data = json.loads(CliRunner().invoke(main, ["diff", "git:HEAD:specs/hybrid.yaml", "specs/hybrid.yaml",
                                                "--format", "json"]).stdout)
    assert data["changes"] is None and data["errors"][0]["location"] == "specs/hybrid.yaml:15:65"
    assert any(line.endswith("steps: nope}") and line.startswith("+") for line in data["text_diff"])
    missing = CliRunner().invoke(main, ["diff", "specs/hybrid.yaml", "specs/none.yaml"])
    assert missing.exit_code == 2 and "specs/none.yaml:1:1: error: no such file" in missing.output
    assert missing.stdout == ""  # a file that cannot be read is an error, not an empty side

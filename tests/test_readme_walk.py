"""scripts/readme_walk.py: the README's commands as a path to walk (CI's long part walks it, --quick).

Here: what it reads of the README (every command of every bash block, each run or set aside with a reason),
and the walk itself on a small README in a fresh process: announced exits pass, an unannounced one fails,
naming the command, and the shell keeps its state from one command to the next."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WALK = ROOT / "scripts" / "readme_walk.py"


def _walk_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("readme_walk", WALK)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # (its dataclasses look their module up)
    spec.loader.exec_module(module)
    return module


def test_every_readme_command_is_walked_or_set_aside_with_a_reason():
    walk = _walk_module()
    every = walk.commands((ROOT / "README.md").read_text())
    text = (ROOT / "README.md").read_text()
    assert len(every) == sum(
        sum(1 for line in block.splitlines()[1:] if line.strip() and not line.lstrip().startswith("#"))
        for block in text.split("```bash")[1:] for block in [block.split("```", 1)[0]])
    assert every[0].text.endswith("hybridc train specs/quickstart.yaml") and every[0].action == "run"
    assert all(c.reason for c in every if c.action != "run" or c.exit)
    # a second training of the quickstart writes elsewhere: the main job's run stays (and nothing is refused)
    trains = [c.text for c in every if c.action == "run" and "hybridc train specs/quickstart.yaml" in c.text]
    assert len(trains) >= 2 and all(" -o runs/" in t for t in trains[1:])
    assert walk.quick("torchrun --nproc_per_node 4 -m hybridc train s.yaml -o r  # note", 20) == \
        "torchrun --nproc_per_node 4 -m hybridc train s.yaml -o r --max-steps 20  # note"
    assert walk.quick("hybridc eval r --data x") == "hybridc eval r --data x"


def _repo(tmp_path: Path, readme: str) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "README.md").write_text(textwrap.dedent(readme))
    (repo / "data.txt").write_text("kept\n")
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    return repo


def _run(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(WALK), "--repo", str(repo), *args], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("fails", [False, True])
def test_the_walk_runs_commands_in_one_shell_and_fails_on_an_exit_the_readme_does_not_announce(tmp_path, fails):
    repo = _repo(tmp_path, f"""\
        # a project
        <!-- walk: exit 3 at 2 (the README says it exits 3); skip 4 (needs a GPU) -->
        ```bash
        export GREETING=hello && cd sub 2>/dev/null || mkdir -p sub
        (exit 3)
        test "$GREETING" = hello && grep -q kept data.txt   # the shell's state and the fresh copy's files
        nvidia-smi
        ```

        ```bash
        {"false" if fails else "true"}
        ```
        """)
    done = _run(repo)
    if fails:
        assert done.returncode == 1, done.stdout + done.stderr
        assert "FAILED at README.md:11 (block 2, command 1): `false` exited 1" in done.stderr
    else:
        assert done.returncode == 0, done.stdout + done.stderr
        assert "every command ran as the README says (4 in" in done.stdout
        assert "README.md:7 (block 1, command 4) skip (needs a GPU)" in done.stdout


def test_an_unreadable_directive_is_an_error(tmp_path):
    repo = _repo(tmp_path, """\
        <!-- walk: skip 5 (there is no fifth) -->
        ```bash
        true
        ```
        """)
    done = _run(repo, "--list")
    assert done.returncode == 2 and "names command 5, but the block has 1" in done.stderr

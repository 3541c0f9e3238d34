"""Commands say what they do at once: lines off a terminal, a live display on one, nothing with --quiet;
what needs no model is refused before torch is even imported.

The commands are run as a user runs them, in fresh processes reading their stderr through a pipe; a slow
command's first line must come before torch is imported (the command then takes far longer: imports, loading),
told by Python's own import-time report on the same stream, so the check does not depend on the machine's load.
"""

from __future__ import annotations

import io
import itertools
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from rich.console import Console

from hybridc.io.activity import Activity

class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def ticking(step: float = 1.0):
    counter = itertools.count()
    return lambda: next(counter) * step


def counted(activity: Activity, total: int) -> None:
    with activity.counted("evaluating the test split (40 sequences)", total, unit="batch", units="batches") as done:
        for b in range(1, total + 1):
            done(b)


def test_off_a_terminal_each_piece_of_work_is_a_whole_line():
    out = io.StringIO()
    activity = Activity(console=Console(file=out, width=20), clock_=ticking())
    with activity.step("loading the model in runs/a-run-directory-with-a-long-name/final"):
        pass
    counted(activity, 20)
    lines = out.getvalue().splitlines()
    assert lines[0] == "loading the model in runs/a-run-directory-with-a-long-name/final"  # (not cut to 20 columns)
    assert lines[1] == "evaluating the test split (40 sequences): 20 batches"
    assert [line.split("  ")[1] for line in lines[2:-1]] == ["batch 1/20", "batch 2/20", "batch 4/20", "batch 6/20",
                                                             "batch 8/20", "batch 10/20", "batch 12/20", "batch 14/20",
                                                             "batch 16/20", "batch 18/20", "batch 20/20"]
    assert lines[-1] == "evaluating the test split (40 sequences): done in 0:12"  # (the clock ticks at each reading)


def test_a_terminal_gets_a_live_display_that_leaves_one_line_per_piece_of_work():
    out = FakeTTY()
    activity = Activity(console=Console(file=out, force_terminal=True, width=100), clock_=ticking())
    assert activity.live
    with activity.step("loading the model in runs/x/final"):
        pass
    counted(activity, 3)
    text = out.getvalue()
    assert "loading the model in runs/x/final: done in 0:01" in text
    assert "evaluating the test split (40 sequences): done in" in text
    assert "batch 1/3" not in text  # (the bar, not lines)


def test_quiet_writes_nothing():
    out = io.StringIO()
    activity = Activity(enabled=False, console=Console(file=out))
    with activity.step("loading"):
        pass
    counted(activity, 3)
    activity.say("selection: a | b")
    assert out.getvalue() == ""


def first_line_and_imports(args: list[str], cwd: Path) -> tuple[str, list[str], subprocess.Popen]:
    """Run ``python -X importtime ARGS``: (the command's first line on stderr, the modules imported before it
    by the import-time report on the same stream, the process still running). Ordering, not a clock: the
    line must come before the slow part (torch's import alone takes seconds), whatever the machine's load."""
    process = subprocess.Popen([sys.executable, "-X", "importtime", *args], cwd=cwd, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, env={k: v for k, v in os.environ.items() if k != "HYBRIDC_DEBUG"})
    imported: list[str] = []
    for raw in process.stderr:  # (line by line; the first line of the command ends the reading)
        line = raw.decode().rstrip("\n")
        if line.startswith("import time:"):
            imported.append(line.rsplit("|", 1)[-1].strip())
            continue
        return line, imported, process
    return "", imported, process


def stop(process: subprocess.Popen) -> None:
    process.kill()  # (this test's own child: its first line was what the test wanted)
    process.wait(timeout=60)
    process.stderr.close()


@pytest.fixture(scope="module")
def saved_hybrid(tmp_path_factory) -> Path:
    """A small hybrid saved as a run's final/ (attention + Mamba from scratch; no tokenizer)."""
    from hybridc.api import compile as compile_spec
    from tests.specs import SMALL, write_spec

    root = tmp_path_factory.mktemp("activity")
    compiled = compile_spec(write_spec(root, SMALL))
    compiled.model.save_pretrained(root / "run" / "final")
    return root / "run"


def test_a_slow_command_says_what_it_does_before_the_slow_part(saved_hybrid):
    line, imported, process = first_line_and_imports(
        ["-m", "hybridc", "eval", str(saved_hybrid), "--data", "recall(vocab=16, length=16)"], saved_hybrid.parent)
    try:
        assert line == f"loading the model in {saved_hybrid / 'final'}"
        heavy = [name for name in imported if name.split(".")[0] in ("torch", "transformers")]
        assert not heavy, f"the first line came after importing {heavy[:3]}"
        assert process.poll() is None  # (the command goes on: loading, evaluating)
    finally:
        stop(process)


def run_and_report_torch(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``hybridc ARGS`` in a fresh process that prints, after the command ends, whether torch was imported."""
    script = textwrap.dedent(f"""\
        import sys
        from hybridc.cli import main
        try:
            main({args!r}, prog_name="hybridc")
        except SystemExit as done:
            print("torch imported:", "torch" in sys.modules, "exit", done.code)
    """)
    env = {k: v for k, v in os.environ.items() if k != "HYBRIDC_DEBUG"}
    return subprocess.run([sys.executable, "-c", script], cwd=cwd, capture_output=True, text=True, env=env,
                          timeout=120)


def test_what_needs_no_model_is_refused_before_torch_loads(saved_hybrid, tmp_path):
    done = run_and_report_torch(["generate", str(saved_hybrid), "hello"], tmp_path)
    assert done.stdout.strip() == "torch imported: False exit 1", done.stdout + done.stderr
    assert f"error: {saved_hybrid / 'final'} has no tokenizer" in done.stderr

    from tests.specs import SMALL, write_spec

    spec = write_spec(tmp_path, SMALL)
    (tmp_path / "runs" / "small").mkdir(parents=True)
    (tmp_path / "runs" / "small" / "notes.txt").write_text("mine")
    done = run_and_report_torch(["train", str(spec)], tmp_path)
    assert done.stdout.strip() == "torch imported: False exit 1", done.stdout + done.stderr
    assert "runs/small is not empty and holds no hybridc run" in done.stderr
    assert (tmp_path / "runs" / "small" / "notes.txt").read_text() == "mine"

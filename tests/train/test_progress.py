"""Training progress: a live bar on a terminal; whole log lines in CI logs, pipes and files."""

from __future__ import annotations

import io
import itertools
import re

import pytest
from click.testing import CliRunner
from rich.console import Console

from hybridc.cli import main
from hybridc.errors import RunError
from hybridc.train.progress import Progress, clock, log_every, logs_step
from tests.specs import write_spec
from tests.train.helpers import DATA, spec_text

LONG = "align_the_projectors_of_every_component_before_the_search_begins_in_earnest"


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def ticking(step: float = 1.0):
    """A clock that advances ``step`` seconds at every reading."""
    counter = itertools.count()
    return lambda: next(counter) * step


def run_stage(progress: Progress, name: str, total: int, alphas=None, start: int = 0) -> None:
    with progress:
        task = progress.stage(name, total=total, completed=start)
        for done in range(start + 1, total + 1):
            progress.update(task, done, loss=5.0 + 1 / done, alphas=alphas, lr=3e-4)
        progress.end(task)


def test_lines_off_a_terminal_are_whole_and_periodic():
    out = io.StringIO()
    alphas = [[0.25, 0.25, 0.5]] * 12  # 12 blocks x 3 components: a line far wider than the console
    progress = Progress(console=Console(file=out, width=40), clock=ticking())
    assert not progress.live
    run_stage(progress, f"1/3 {LONG}", 20, alphas)
    lines = out.getvalue().splitlines()
    assert lines[0] == f"stage 1/3 {LONG}: 20 steps"
    steps = [int(m.group(1)) for m in (re.search(r"  step (\d+)/20  ", line) for line in lines) if m]
    assert steps == [1, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20]  # the first, every 2nd (a tenth of 20), the last
    row = "[0.25 0.25 0.50]"
    first = lines[1]
    assert first == (f"stage 1/3 {LONG}  step 1/20  loss 6.0000  lr 3.0e-04  alphas {' '.join([row] * 12)}"
                     "  elapsed 0:01  eta 0:19")
    assert len(first) > 300 and all(line.count(row) == 12 for line in lines[1:-1])
    assert lines[-1] == f"stage 1/3 {LONG}: done in 0:12 (20 steps, 0.60 s/step)"
    assert len(lines) == 13 and "\x1b" not in out.getvalue()


def test_interval_resume_and_tiny_stages():
    out = io.StringIO()
    run_stage(Progress(console=Console(file=out), every=5, clock=ticking()), "2/2 search", 12, start=3)
    lines = out.getvalue().splitlines()
    assert lines[0] == "stage 2/2 search: 12 steps, resuming after step 3"
    assert [line.split("  ")[1] for line in lines[1:-1]] == ["step 4/12", "step 5/12", "step 10/12", "step 12/12"]
    assert lines[-1].startswith("stage 2/2 search: done in ") and "(9 steps" in lines[-1]
    assert all(logs_step(k, 0, 3, Progress().interval(3)) for k in (1, 2, 3))  # tiny stages: every step
    assert Progress().interval(1000) == 100


def test_a_terminal_gets_the_bar_and_no_lines():
    out = FakeTTY()
    progress = Progress(console=Console(file=out, force_terminal=True, width=120), clock=ticking())
    assert progress.live
    run_stage(progress, "1/1 align", 5)
    assert "1/1 align" in out.getvalue() and "step 1/5" not in out.getvalue()


def test_force_color_on_a_pipe_still_gets_lines(monkeypatch):
    monkeypatch.setenv("FORCE_COLOR", "1")
    out = io.StringIO()
    progress = Progress(console=Console(file=out), clock=ticking())
    assert progress.console.is_terminal and not progress.live
    run_stage(progress, "1/1 align", 2)
    assert "stage 1/1 align  step 2/2  loss 5.5000" in out.getvalue()


def test_disabled_progress_writes_nothing():
    out = io.StringIO()
    run_stage(Progress(enabled=False, console=Console(file=out)), "1/1 align", 3)
    assert out.getvalue() == ""


def test_log_every_setting():
    assert log_every({}) is None and log_every({"HYBRIDC_LOG_EVERY": " "}) is None
    assert log_every({"HYBRIDC_LOG_EVERY": "25"}) == 25
    for bad in ("0", "-3", "ten", "2.5"):
        with pytest.raises(RunError, match="HYBRIDC_LOG_EVERY"):
            log_every({"HYBRIDC_LOG_EVERY": bad})
    assert clock(0.4) == "0:00" and clock(111) == "1:51" and clock(7387) == "2:03:07"


def _train(tmp_path, *extra: str, env: dict | None = None):
    stages = f"- {{name: {LONG}, kind: finetune, data: '{DATA}', steps: 6}}\n- {{name: finetune, steps: 3}}"
    spec = write_spec(tmp_path, spec_text(stages, mixture="fixed([[0.5, 0.5], [0.5, 0.5]])"))
    result = CliRunner().invoke(main, ["train", str(spec), "-o", str(tmp_path / "r"), *extra], env=env)
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


def test_train_off_a_terminal_logs_what_it_prepares_and_each_stage(tmp_path):
    lines = _train(tmp_path, env={"HYBRIDC_LOG_EVERY": "2"})
    preparing = lines.index(f"preparing data for stages '{LONG}', 'finetune': "
                            "recall(vocab=16, length=16, examples=256, valid=0.05, test=0.05)")
    loading = lines.index("loading components: attn (new gpt-neox), ssm (new mamba)")
    start = lines.index(f"stage 1/2 {LONG}: 6 steps")
    assert preparing < loading < start
    steps = [line for line in lines if line.startswith(f"stage 1/2 {LONG}  step ")]
    assert [s.split("  ")[1] for s in steps] == ["step 1/6", "step 2/6", "step 4/6", "step 6/6"]
    assert all(re.fullmatch(rf"stage 1/2 {LONG}  step \d/6  loss \d+\.\d{{4}}  lr \d\.\de[-+]\d\d"
                            r"  alphas \[0\.50 0\.50\] \[0\.50 0\.50\]  elapsed \d+:\d\d  eta \d+:\d\d", s)
               for s in steps), steps  # whole lines, wider than 80 columns
    end = next(i for i, line in enumerate(lines) if line.startswith(f"stage 1/2 {LONG}: done in "))
    assert lines.index(steps[-1]) < end < lines.index("stage 2/2 finetune: 3 steps")
    assert "stage 2/2 finetune  step 3/3  loss " in "\n".join(lines)
    assert any(line.startswith("stage 2/2 finetune: done in ") for line in lines)


def test_train_quiet_logs_no_progress(tmp_path):
    text = "\n".join(_train(tmp_path, "-q"))
    for absent in ("preparing data", "loading components", "  step ", ": done in ", "6 steps\n"):
        assert absent not in text
    assert f"stage '{LONG}': 6 steps, valid loss" in text  # the stage summaries stay

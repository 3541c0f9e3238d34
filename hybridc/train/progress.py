"""Training progress on stderr (off with --quiet): a live rich bar on a terminal, plain log lines elsewhere.

On a terminal (stderr is a TTY) each stage gets a bar: step, loss, lr, alphas, elapsed time and ETA, as wide
as the terminal. Anywhere else (CI logs, ``| tee``, nohup, files) there is no bar but whole lines, never
wrapped or cut to a width::

    stage 1/3 align: 200 steps
    stage 1/3 align  step 20/200  loss 5.3666  lr 3.0e-04  alphas [0.50 0.50]  elapsed 0:12  eta 1:51
    stage 1/3 align: done in 2:03 (200 steps, 0.62 s/step)

A step line is written after the stage's first step, every ``every`` steps and after its last step. ``every``
defaults to a tenth of the stage's steps, rounded up (so about ten lines per stage, every step for stages of
ten steps or fewer); ``HYBRIDC_LOG_EVERY=N`` sets it. ``TTY_COMPATIBLE=0`` asks for the lines on a terminal.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress

from ..errors import RunError
from ..io.terminal import clock, interactive, logs_step  # noqa: F401  (what the display shows, shared)

LOG_EVERY_ENV = "HYBRIDC_LOG_EVERY"
LINES_PER_STAGE = 10  # the default interval: about this many step lines per stage


@dataclass
class _Stage:
    """A stage as the log lines see it: its label ("1/3 align"), steps, first step here, start time."""

    name: str
    total: int
    start: int
    began: float
    done: int


class Progress:
    """Progress of a run's stages: a live bar if ``console`` writes to a terminal, else log lines."""

    def __init__(self, enabled: bool = True, console: Console | None = None, every: int | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.enabled = enabled
        self.console = console if console is not None else Console(stderr=True)
        self.live = enabled and interactive(self.console)
        self.every = every
        self.clock = clock
        self._stages: dict[TaskID, _Stage] = {}
        self._bar = RichProgress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
            console=self.console, disable=not self.live, transient=False,
        )

    @property
    def lines(self) -> bool:
        """Progress is written as log lines (enabled, not on a terminal)."""
        return self.enabled and not self.live

    def __enter__(self) -> Progress:
        self._bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._bar.__exit__(*exc)

    def stage(self, name: str, total: int, completed: int = 0) -> TaskID:
        """A stage starts (or resumes after ``completed`` steps); returns its handle for ``update``/``end``."""
        task = self._bar.add_task(name, total=max(total, 1), completed=completed, info="")
        self._stages[task] = _Stage(name, total, completed, self.clock(), completed)
        self._write(f"stage {name}: {total} steps" + (f", resuming after step {completed}" if completed else ""))
        return task

    def update(self, task: TaskID, completed: int, loss: float, alphas: list[list[float]] | None = None,
               lr: float | None = None) -> None:
        """Step ``completed`` of the stage is done."""
        info = step_info(loss, lr, alphas)
        self._bar.update(task, completed=completed, info=info)
        stage = self._stages[task]
        stage.done = completed
        if self.lines and logs_step(completed, stage.start, stage.total, self.interval(stage.total)):
            elapsed = self.clock() - stage.began
            self._write(f"stage {stage.name}  step {completed}/{stage.total}  {info}  elapsed {clock(elapsed)}"
                        f"  eta {clock(eta(elapsed, completed - stage.start, stage.total - completed))}")

    def end(self, task: TaskID) -> None:
        """The stage's steps are all taken."""
        stage = self._stages.pop(task)
        elapsed = self.clock() - stage.began
        ran = stage.done - stage.start
        pace = f", {elapsed / ran:.2f} s/step" if ran else ""
        self._write(f"stage {stage.name}: done in {clock(elapsed)} ({ran} steps{pace})")

    def interval(self, total: int) -> int:
        """Steps between two step lines of a stage of ``total`` steps."""
        return self.every if self.every is not None else max(1, math.ceil(total / LINES_PER_STAGE))

    def _write(self, line: str) -> None:
        if self.lines:
            self.console.out(line, highlight=False)  # whole: no markup, wrapping or cropping




def log_every(environ: Mapping[str, str]) -> int | None:
    """The step-line interval ``HYBRIDC_LOG_EVERY`` sets (None: the default, see the module doc)."""
    value = environ.get(LOG_EVERY_ENV, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise RunError(f"{LOG_EVERY_ENV}={value!r} is not a number of steps",
                       f"set {LOG_EVERY_ENV} to a whole number >= 1, or unset it for about ten lines per stage")
    return int(value)




def step_info(loss: float, lr: float | None, alphas: list[list[float]] | None) -> str:
    """``loss 5.3666  lr 3.0e-04  alphas [0.50 0.50] [0.31 0.69]`` (alphas only when blocks mix components)."""
    info = f"loss {loss:.4f}"
    if lr is not None:
        info += f"  lr {lr:.1e}"
    if alphas and len(alphas[0]) > 1:
        info += "  alphas " + " ".join("[" + " ".join(f"{a:.2f}" for a in row) + "]" for row in alphas)
    return info


def eta(elapsed: float, ran: int, left: int) -> float:
    """Seconds left at the pace so far (``ran`` steps in ``elapsed`` seconds, ``left`` to go)."""
    return elapsed / ran * left if ran > 0 else 0.0


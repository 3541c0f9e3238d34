"""What a command is doing while it works, on stderr (torch-free; off with ``--quiet``).

As the training progress does (``hybridc.train.progress``): on a terminal a live display -- a spinner with
the elapsed time for work of unknown length (loading a model, measuring components), a bar for work counted
in steps (evaluation batches) -- that leaves one line behind when the work is done; anywhere else (CI logs,
``| tee``, a file) whole lines, never cut to a width: one when a piece of work starts, and for counted work
a line after its first step, every tenth of it and after its last, and one when it is done::

    loading the model in runs/quickstart/final
    preparing data: recall(vocab=16, length=32)
    evaluating the test split (205 sequences): 2 batches
    evaluating the test split (205 sequences)  batch 1/2  elapsed 0:01
    evaluating the test split (205 sequences)  batch 2/2  elapsed 0:02
    evaluating the test split (205 sequences): done in 0:02

Commands say what they start before the slow imports (torch, transformers) begin, so something is on the
screen at once.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress

from .terminal import clock, interactive, logs_step

LINES = 10  # counted work: about this many lines


class Activity:
    """Progress of a command's pieces of work: live on a terminal, whole lines elsewhere, nothing when quiet."""

    def __init__(self, enabled: bool = True, console: Console | None = None,
                 clock_: Callable[[], float] = time.monotonic):
        self.enabled = enabled
        self.console = console if console is not None else Console(stderr=True)
        self.live = enabled and interactive(self.console)
        self.clock = clock_

    def say(self, text: str) -> None:
        """One line (not a live display): a fact about the work, as ``selection: attn | ssm``."""
        if self.enabled:
            self.console.out(text, highlight=False)

    @contextlib.contextmanager
    def step(self, text: str) -> Iterator[None]:
        """Work of unknown length: a spinner with the elapsed time on a terminal, the line ``text`` elsewhere."""
        if not self.enabled:
            yield
            return
        if not self.live:
            self.say(text)
            yield
            return
        began = self.clock()
        with self._display(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn()) as display:
            display.add_task(text, total=None)
            yield
        self.say(f"{text}: done in {clock(self.clock() - began)}")

    @contextlib.contextmanager
    def counted(self, text: str, total: int, unit: str = "step", units: str = "steps"
                ) -> Iterator[Callable[[int], None]]:
        """Work of ``total`` steps (``unit``, ``units``: what a step is called); the body calls the function it is
        given with the steps done so far."""
        if not self.enabled:
            yield lambda done: None
            return
        began = self.clock()
        every = max(1, math.ceil(total / LINES))
        if self.live:
            with self._display(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                               TimeElapsedColumn()) as display:
                task = display.add_task(text, total=max(total, 1))
                yield lambda done: display.update(task, completed=done)
        else:
            self.say(f"{text}: {total} {unit if total == 1 else units}")

            def line(done: int) -> None:
                if logs_step(done, 0, total, every):
                    self.say(f"{text}  {unit} {done}/{total}  elapsed {clock(self.clock() - began)}")

            yield line
        self.say(f"{text}: done in {clock(self.clock() - began)}")

    def _display(self, *columns) -> RichProgress:
        return RichProgress(*columns, console=self.console, transient=True)

"""A live progress bar for training: stage, step, loss, alphas, ETA (rich; off with --quiet)."""

from __future__ import annotations

from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress


class Progress:
    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self._bar = RichProgress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
            disable=not enabled, transient=False,
        )

    def __enter__(self) -> "Progress":
        self._bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._bar.__exit__(*exc)

    def stage(self, name: str, total: int, completed: int = 0):
        return self._bar.add_task(name, total=max(total, 1), completed=completed, info="")

    def update(self, task, completed: int, loss: float, alphas: list[list[float]] | None = None) -> None:
        info = f"loss {loss:.4f}"
        if alphas and len(alphas[0]) > 1:
            info += "  alphas " + " ".join("[" + " ".join(f"{a:.2f}" for a in row) + "]" for row in alphas)
        self._bar.update(task, completed=completed, info=info)

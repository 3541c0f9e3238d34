"""What ``hybridc check`` prints: a progress bar while it runs, then the outcome."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import click


def run_check(path: Path, *, examples: int, seed: int) -> int:
    """Check one spec (``check.check_spec``), print the outcome; the exit status: 0 held, 1 failed."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .check import check_spec

    console = Console(stderr=True)
    bar = Progress(TextColumn(f"checking {path}"), BarColumn(), MofNCompleteColumn(), TextColumn("variations"),
                   TimeElapsedColumn(), console=console, transient=True, disable=not console.is_terminal)
    with bar:
        task = bar.add_task("check", total=examples)
        outcome = check_spec(path, examples=examples, seed=seed,
                             progress=lambda done, total: bar.update(task, completed=done))
    for warning in outcome.warnings:
        click.echo(warning.render(), err=True)
    if outcome.failure is None:
        click.echo(f"{path}: ok: the spec and {outcome.examples} variation{'s' * (outcome.examples != 1)} of it hold "
                   f"every invariant ({outcome.seconds:.0f} s, seed {seed})")
        for line in outcome.stand_ins:
            click.echo(f"  stand-in {line}")
        return 0
    failure = outcome.failure
    click.echo(f"{path}: FAILED: {failure.invariant}", err=True)
    click.echo(f"  {failure.detail}", err=True)
    where = (f"the smallest failing variation: {outcome.what}" if outcome.what
             else "the spec itself fails, before any variation")
    click.echo(f"  {where}; as a spec (components replaced by tiny stand-ins, deleted since):", err=True)
    click.echo(textwrap.indent(outcome.counterexample or "", "    "), nl=False, err=True)
    for line in outcome.stand_ins:
        click.echo(f"  stand-in {line}", err=True)
    click.echo(f"  (after {outcome.examples} variation{'s' * (outcome.examples != 1)}, {outcome.seconds:.0f} s; "
               f"rerun with --seed {seed} to reproduce)", err=True)
    sys.stderr.flush()
    return 1

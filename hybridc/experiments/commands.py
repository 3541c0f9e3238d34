"""Command-line faces of the experiments: ``hybridc mad``, ``hybridc lra``, ``hybridc sweep``, ``hybridc program``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..spec.mad_presets import TASKS


def _load(spec: Path):
    from ..spec.frontend import load_spec

    rs = load_spec(spec)
    for w in rs.warnings:
        click.echo(w.render(), err=True)
    return rs


def _say(text: str) -> None:
    click.echo(text, err=True)


@click.command(short_help="The hybrid and each component on the MAD tasks.")
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--tasks", default=",".join(TASKS), show_default=True, metavar="T1,T2", help="Comma-separated MAD tasks.")
@click.option("--preset", default="cpu", show_default=True, metavar="cpu|mad|...",
              help="cpu, mad or a grid point (e.g. mad-length256).")
@click.option("--steps", type=click.IntRange(min=1), default=300, show_default=True, help="Training steps per run.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--lrs", default="1e-3", show_default=True, metavar="LR1,LR2",
              help="Learning rates to try; the best on validation wins (benchmarks/mad.py tries 1e-3,3e-3,1e-2).")
@click.option("--weight-decay", type=float, default=0.0, show_default=True)
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Output directory (default runs/<name>-mad).")
@click.option("--quiet", "-q", is_flag=True)
def mad(spec: Path, tasks: str, preset: str, steps: int, batch_size: int, lrs: str, weight_decay: float,
        out_dir: Path | None, quiet: bool) -> None:
    """The hybrid (searched) and each component alone, from scratch, on each MAD task with the same budget;
    per model the learning rate with the best validation accuracy (default 1e-3 only: the benchmark needed up to
    1e-2); a table of test accuracies, mad-results.json (with the searched alphas per task and block) and
    mad-results.png."""
    from ..io.activity import Activity
    from ..cli import _quiet_libraries
    from ..errors import CompileError
    from ..spec.mad_presets import presets

    chosen = tuple(t.strip() for t in tasks.split(",") if t.strip())
    unknown = [t for t in chosen if t not in TASKS]
    if unknown:
        raise click.BadParameter(f"unknown task(s) {', '.join(unknown)}; tasks: {', '.join(TASKS)}", param_hint="--tasks")
    for task in chosen:
        if preset not in presets(task):
            raise CompileError(f"unknown preset '{preset}' for {task}", "cpu, mad or mad-<key><value>, e.g. mad-vocab32")
    try:
        rates = tuple(float(x) for x in lrs.split(","))
    except ValueError:
        raise click.BadParameter("comma-separated numbers, e.g. 5e-4,1e-3", param_hint="--lrs") from None
    rs = _load(spec)
    out = out_dir or Path("runs") / f"{rs.spec.name}-mad"
    models = ", ".join(["hybrid", *(f"{m} alone" for m in rs.names)])
    with Activity(enabled=not quiet).step(f"mad: {len(chosen)} task{'s' * (len(chosen) != 1)} x {len(rates)} learning "
                                          f"rate{'s' * (len(rates) != 1)} ({models}) into {out}"):
        from .mad import MadBudget, run_mad

        _quiet_libraries()
    results = run_mad(rs, out, tasks=chosen, preset=preset,
                      budget=MadBudget(steps=steps, batch_size=batch_size, lrs=rates, weight_decay=weight_decay),
                      quiet=quiet, say=_say)
    print_results_table(results, "MAD test accuracy (macro)")
    click.echo(f"wrote {out / 'mad-results.json'} and {out / 'mad-results.png'}")


def print_results_table(results: dict, title: str) -> None:
    """An experiment's table: test accuracy per task (rows) and model (columns, the best bold), the searched
    alphas per block, and the tasks skipped (their data not found)."""
    from rich.table import Table

    from ..cli.summary import wide_console

    models = ["hybrid", *results["components"]]
    table = Table(title=f"{title}, preset {results['preset']}, best validation lr per model")
    table.add_column("task")
    for model in models:
        table.add_column(model, justify="right")
    table.add_column("searched alphas (per block)")
    for task, row in results["tasks"].items():
        best = max(row["test"].values())
        cells = [(f"[bold]{row['test'][m]:.3f}[/bold]" if row["test"][m] == best else f"{row['test'][m]:.3f}")
                 for m in models]
        alphas = " ".join("[" + " ".join(f"{a:.2f}" for a in r) + "]" for r in (row.get("alphas") or []))
        table.add_row(task, *cells, alphas)
    for task in results.get("skipped", {}):
        table.add_row(task, *["-"] * len(models), "skipped: data not found")
    wide_console().print(table)


@click.command(short_help="Long Range Arena: the hybrid and each component alone.")
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--tasks", default="listops,pathfinder,image,text,retrieval", show_default=True, metavar="T1,T2",
              help="Comma-separated LRA tasks (image, text and retrieval read --data-dir; missing ones are skipped).")
@click.option("--preset", type=click.Choice(["cpu", "lra"]), default="cpu", show_default=True,
              help="cpu: minutes on 2 cores; lra: LRA's lengths, sizes and budgets (an accelerator's job).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("data"), show_default=True,
              help="Where image (cifar-10-batches-bin/, cifar10/ or cifar10.npz), text (aclImdb/) and retrieval "
                   "(lra_release/.../tsv_data/ or aan/) data are.")
@click.option("--steps", type=click.IntRange(min=1), help="Training steps per run (default: the preset's per task).")
@click.option("--batch-size", type=click.IntRange(min=1), help="Default: the preset's per task.")
@click.option("--lrs", metavar="LR1,LR2",
              help="Learning rates to try, the best on validation wins (default: the preset's per task).")
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Output directory (default runs/<name>-lra).")
@click.option("--quiet", "-q", is_flag=True)
def lra(spec: Path, tasks: str, preset: str, data_dir: Path, steps: int | None, batch_size: int | None,
        lrs: str | None, out_dir: Path | None, quiet: bool) -> None:
    """The hybrid (searched: one search stage with the spec's algorithm) and each component alone, from scratch,
    with the same budget, on each Long Range Arena task; per model the learning rate with the best validation
    accuracy; a table of test accuracies, lra-results.json (with the searched alphas per task and block, and the
    tasks skipped) and lra-results.png. image, text and retrieval are read from --data-dir (cifar-10-batches-bin/,
    cifar10/ or cifar10.npz; aclImdb/; lra_release/.../tsv_data/, tsv_data/ or aan/); a task whose data is not
    there is skipped and named, the others run."""
    from ..cli import _quiet_libraries
    from .lra import TASKS as LRA_TASKS
    from .lra import run_lra

    chosen = tuple(t.strip() for t in tasks.split(",") if t.strip())
    unknown = [t for t in chosen if t not in LRA_TASKS]
    if unknown or not chosen:
        raise click.BadParameter(f"unknown task(s) {', '.join(unknown) or '(none given)'}; tasks: {', '.join(LRA_TASKS)}",
                                 param_hint="--tasks")
    rates = None
    if lrs is not None:
        try:
            rates = tuple(float(x) for x in lrs.split(","))
        except ValueError:
            raise click.BadParameter("comma-separated numbers, e.g. 5e-4,1e-3", param_hint="--lrs") from None
    rs = _load(spec)
    _quiet_libraries()
    out = out_dir or Path("runs") / f"{rs.spec.name}-lra"
    results = run_lra(rs, out, tasks=chosen, preset=preset, data_dir=data_dir, steps=steps, batch_size=batch_size,
                      lrs=rates, quiet=quiet, say=_say)
    print_results_table(results, "Long Range Arena test accuracy")
    for task, why in results["skipped"].items():
        click.echo(f"skipped {task}: {why}")
    if results["tasks"]:
        click.echo(f"wrote {out / 'lra-results.json'} and {out / 'lra-results.png'}")
    else:
        click.echo(f"wrote {out / 'lra-results.json'} (no task ran)")


@click.command(short_help="Fine-tune at every point of a grid of mixtures.")
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--alphas", "grid", default="0:1:11", show_default=True, metavar="START:STOP:COUNT",
              help="start:stop:count of the second component's weight.")
@click.option("--search", "search_run", type=click.Path(file_okay=False, path_type=Path), metavar="RUN",
              help="A run whose final alphas are marked (where search landed).")
@click.option("--programmed", type=click.Path(dir_okay=False, path_type=Path),
              help="An alphas file from hybridc program, marked on the plot.")
@click.option("--max-steps", type=click.IntRange(min=1), help="Cap each point's training stages (smoke runs).")
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Output directory (default runs/<name>-sweep).")
@click.option("--quiet", "-q", is_flag=True)
def sweep(spec: Path, grid: str, search_run: Path | None, programmed: Path | None, max_steps: int | None,
          out_dir: Path | None, quiet: bool) -> None:
    """Two components, one or two blocks: run SPEC's stages at every point of a grid of fixed mixtures with the
    same budget (search stages fine-tune with the alphas fixed, taking the search's weight steps: half the
    steps of an alternating search; rewinds stay, discretization goes: a point differs from the searched hybrid
    only in its alphas); sweep.csv and sweep.png (a line or a heatmap, marking where search and programming
    landed)."""
    from ..io.activity import Activity
    from ..cli import _quiet_libraries
    from .sweep import parse_grid

    values = parse_grid(grid)
    rs = _load(spec)
    out = out_dir or Path("runs") / f"{rs.spec.name}-sweep"
    with Activity(enabled=not quiet).step(f"sweep: {len(values) ** rs.num_blocks} fixed mixtures into {out}"):
        from .sweep import run_sweep

        _quiet_libraries()
    rows = run_sweep(rs, values, out, search_run=search_run, programmed=programmed, quiet=quiet, max_steps=max_steps,
                     say=_say)
    best = min(rows, key=lambda r: r["valid_loss"] if r["valid_loss"] is not None else float("inf"))
    click.echo(f"best valid loss {best['valid_loss']:.4f} at "
               + ", ".join(f"{k}={v:g}" for k, v in best.items() if k.startswith("alpha")))
    click.echo(f"wrote {out / 'sweep.csv'} and {out / 'sweep.png'}")


@click.command(short_help="A spec with alphas programmed from MAD searches.")
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--from", "results_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="mad-results.json written by hybridc mad.")
@click.option("--tasks", metavar="T1,T2", help="Comma-separated tasks to average over (default: all in the results).")
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path),
              help="The new spec (default <spec>.programmed.yaml beside SPEC).")
def program(spec: Path, results_path: Path, tasks: str | None, out: Path | None) -> None:
    """Write a new spec with mixture: programmed(<file>): per block the mean of the proxy-searched alphas of
    mad-results.json, weight 0 for a component that cannot take the input length; search stages become
    fine-tuning."""
    from .program import load_for_programming, programmed_check, write_programmed, zero_reasons

    loaded = load_for_programming(spec)
    for w in loaded.rs.warnings:
        click.echo(w.render(), err=True)
    results = json.loads(results_path.read_text())
    chosen = [t.strip() for t in tasks.split(",")] if tasks else None
    target = out or spec.with_name(spec.stem + ".programmed.yaml")
    new_spec, alphas = write_programmed(loaded.parsed, loaded.rs, results, target, chosen)
    click.echo(f"wrote {new_spec} (mixture: programmed({alphas.name})) and {alphas}")
    for name, why in zero_reasons(loaded.rs).items():
        click.echo(f"'{name}' has weight 0 in every block: it {why} (the rows are renormalised over the others)")
    for line in programmed_check(new_spec):
        click.echo(line, err=True)
    click.echo(f"compare: hybridc diff {spec} {new_spec}")


COMMANDS = (mad, lra, sweep, program)

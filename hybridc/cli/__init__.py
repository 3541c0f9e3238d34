"""The ``hybridc`` command line: thin commands that call the library and print.

Errors from the library (``SpecError``, ``CompileError``, ``RunError``) are rendered once, here, as
``FILE:LINE:COL: error: ... (hint: ...)`` lines; never a traceback (set HYBRIDC_DEBUG=1 to see one
for an internal error). Commands that need no model (validate, fmt) never import torch.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from ..errors import HybridcError

EXIT_USAGE = 2
DEBUG_OFF = ("", "0", "false", "no", "off")  # HYBRIDC_DEBUG values that leave tracebacks off


def debug_enabled(environ=os.environ) -> bool:
    """``HYBRIDC_DEBUG`` asks for tracebacks of internal errors: set to anything but empty, 0, false, no, off."""
    return environ.get("HYBRIDC_DEBUG", "").strip().lower() not in DEBUG_OFF


class ExistingDirectory(click.Path):
    """An existing directory (links followed: the user names it): a FIFO, a device or a file is refused
    at once, before anything opens it (click's own check refuses only regular files)."""

    def __init__(self):
        super().__init__(exists=True, file_okay=False, path_type=Path)

    def convert(self, value, param, ctx):
        path = super().convert(value, param, ctx)
        if not os.path.isdir(path):
            from ..io import mode_kind

            try:
                kind = mode_kind(os.stat(path).st_mode)
            except OSError:
                kind = "not readable"
            self.fail(f"{path} is {kind}, not a directory", param, ctx)
        return path


class _Group(click.Group):
    # commands that live in other modules, imported only when used (start-up time of validate/fmt)
    LAZY = {"mad": "hybridc.experiments.commands:mad", "lra": "hybridc.experiments.commands:lra",
            "sweep": "hybridc.experiments.commands:sweep", "program": "hybridc.experiments.commands:program"}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.LAZY])

    def get_command(self, ctx: click.Context, name: str):
        if name in self.LAZY:
            from ..io.dotted import load_object

            return load_object(self.LAZY[name])
        return super().get_command(ctx, name)

    def invoke(self, ctx: click.Context):
        try:
            try:
                return super().invoke(ctx)
            finally:  # output still buffered meets a closed pipe here, not at exit
                sys.stdout.flush()
        except BrokenPipeError:
            reader_went_away()
        except HybridcError as err:
            for warning in getattr(err, "warnings", ()):
                click.echo(warning.render(), err=True)
            click.echo(err.render(), err=True)
            sys.exit(err.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException, SystemExit):
            raise
        except BrokenPipeError:  # the reader went away while an error was being reported
            reader_went_away()
        except Exception as err:  # a bug in hybridc: say so, briefly
            if debug_enabled():
                raise
            click.echo(f"internal error: {type(err).__name__}: {err}", err=True)
            click.echo("hint: this is a bug in hybridc; rerun with HYBRIDC_DEBUG=1 for a traceback and report it",
                       err=True)
            sys.exit(70)


EXIT_SIGPIPE = 128 + 13  # what a shell reports for a tool ended by SIGPIPE (`yes | head -1`)


def reader_went_away() -> None:
    """Whoever read our output closed it (``hybridc fmt ... | head -1``): stop quietly, as Unix tools do.

    Python ignores SIGPIPE, so a write to a closed pipe raises ``BrokenPipeError`` instead of ending the
    process. Nothing more can be said to that reader: stdout and stderr are pointed at /dev/null (so the
    interpreter's last flush cannot complain either), and the exit status is the one a shell reports for a
    process ended by SIGPIPE."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        try:
            os.dup2(devnull, stream.fileno())
        except (OSError, ValueError, AttributeError):  # not a real file (tests' captured streams)
            pass
    os.close(devnull)
    sys.exit(EXIT_SIGPIPE)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hybridc")
def main() -> None:
    """hybridc: compile YAML specs into pretrained hybrid language models."""
    from ..train.threads import clamp_omp_threads

    lowered = clamp_omp_threads()  # (before torch loads: its OpenMP runtime reads it once)
    if lowered is not None:
        click.echo(f"warning: {lowered}", err=True)


def _print_warnings(rs) -> None:
    for w in rs.warnings:
        click.echo(w.render(), err=True)


def _components(rs) -> str:
    """``2 components (qwen3, falcon-h1)``."""
    families = ", ".join(c.family for c in rs.components)
    return f"{len(rs.components)} component{'s' * (len(rs.components) != 1)} ({families})"


@main.command(short_help="The model families hybridc runs as components.")
def families() -> None:
    """List the model families hybridc runs as components (from: a checkpoint of one, or init: {family: ...})."""
    from rich.table import Table

    from ..components.architectures import ARCHITECTURES, kind, notes
    from ..io.terminal import PipeConsole

    table = Table(title=f"{len(ARCHITECTURES)} families")
    for column in ("family", "model type", "transformers class", "layers", "notes"):
        table.add_column(column, overflow="fold")
    for name in sorted(ARCHITECTURES):
        architecture = ARCHITECTURES[name]
        table.add_row(name, architecture.model_type, architecture.model_class, kind(architecture), notes(architecture))
    PipeConsole(soft_wrap=False).print(table)


_ROOT_OPTION = click.option(
    "--root", type=ExistingDirectory(), default=None,
    help="Refuse local paths in the spec (models, tokenizer, data, alphas) that resolve outside DIR.")


@main.command(short_help="Check specs: every error at once, located.")
@click.argument("specs", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@_ROOT_OPTION
def validate(specs: tuple[Path, ...], root: Path | None) -> None:
    """Check SPECS (reading configs only, never weights): every error at once, located; exit 2 if any is
    invalid. With --root, local paths may not resolve outside DIR (also on compile and train)."""
    from ..errors import SpecError
    from ..spec.frontend import load_spec

    failed = []
    for path in specs:
        try:
            rs = load_spec(path, root=root)
        except SpecError as err:
            click.echo(err.render(), err=True)
            failed.append(path)
            continue
        if rs.spec.hybrid.budget is not None:  # can any discretization fit it? (needs the components' costs)
            from ..spec.checks import budget_check_deferred, budget_state_unknown

            try:
                if (unknown := budget_state_unknown(rs.spec, list(rs.components), rs.source_map)) is not None:
                    raise SpecError([unknown])
                deferred = budget_check_deferred(rs.spec, list(rs.components), rs.source_map)
                if deferred is None:
                    from ..graph.budget import check_budget

                    check_budget(rs)
            except SpecError as err:
                click.echo(err.render(), err=True)
                failed.append(path)
                continue
            if deferred is not None:
                click.echo(deferred.render(), err=True)
        _print_warnings(rs)
        blocks = rs.num_blocks
        click.echo(f"{path}: ok ({len(rs.components)} component{'s' * (len(rs.components) != 1)}, "
                   f"{blocks} block{'s' * (blocks != 1)}, width {rs.width})")
    if failed:
        sys.exit(EXIT_USAGE)


@main.command(short_help="Print specs in canonical form (--check, --write).")
@click.argument("specs", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--check", is_flag=True, help="Exit 1 if a file is not in canonical form; change nothing.")
@click.option("--write", "-w", is_flag=True, help="Rewrite the files in canonical form.")
@click.option("--no-comments", is_flag=True, help="Drop comments (the pure canonical form).")
@click.option("--textconv", is_flag=True, hidden=True,
              help="For git: canonical form without comments, or the file as it is when it does not parse.")
def fmt(specs: tuple[Path, ...], check: bool, write: bool, no_comments: bool, textconv: bool) -> None:
    """Print SPECS in canonical form (every default explicit, stable order, comments kept); --check exits 1 if
    a file is not canonical, --write rewrites it (never an invalid file)."""
    from ..errors import SpecError
    from ..io import atomic_write_text
    from ..spec.frontend import parse_file

    if check and write:
        raise click.UsageError("--check and --write exclude each other")
    status = 0
    for path in specs:
        try:
            parsed = parse_file(path)
        except SpecError as err:
            if textconv:
                click.echo(path.read_text(errors="replace"), nl=False)
                continue
            click.echo(err.render(), err=True)
            status = EXIT_USAGE
            continue
        text = parsed.canonical_text(keep_comments=not (no_comments or textconv))
        if check:
            if text != parsed.document.text:
                click.echo(f"{path}: not canonical (run hybridc fmt --write {path})", err=True)
                status = max(status, 1)
        elif write:
            if text != parsed.document.text:
                atomic_write_text(path, text)
                click.echo(f"{path}: rewritten", err=True)
        else:
            click.echo(text, nl=False)
    sys.exit(status)


@main.command(short_help="Property-check a spec and variations of it.")
@click.argument("specs", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--examples", "-n", type=click.IntRange(min=1), default=20, show_default=True,
              help="Variations of each spec to draw and check.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the variations (the same seed draws the same ones).")
def check(specs: tuple[Path, ...], examples: int, seed: int) -> None:
    """Property-check SPECS: hybridc's invariants on each spec and N variations of it (one change each), with
    tiny stand-ins of its components; prints the smallest failing variation. Exit 1 if one fails, 2 if a spec
    is invalid. Needs hybridc[testing] (hypothesis)."""
    from ..errors import SpecError
    from ..testing.report import run_check

    _quiet_libraries()
    status = 0
    for path in specs:
        try:
            status = max(status, run_check(path, examples=examples, seed=seed))
        except SpecError as err:
            click.echo(err.render(), err=True)
            status = EXIT_USAGE
    sys.exit(status)


@main.command(name="compile", short_help="Parameters, FLOPs, plan and choices of a spec.")
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write spec.lock.yaml, plan.json and graph.dot here.")
@click.option("--build", is_flag=True, help="Also lower to a PyTorch model (loads weights) and check it.")
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr (what the command prints still prints).")
@_ROOT_OPTION
def compile_cmd(spec: Path, out_dir: Path | None, build: bool, quiet: bool, root: Path | None) -> None:
    """Compile SPEC: print its components, parameters per group (trainable and frozen per stage), the plan,
    FLOPs per token and every discretized choice with its cost; -o writes spec.lock.yaml, plan.json and
    graph.dot; --build also lowers it to PyTorch (loading weights) and checks the parameter count against the
    graph."""
    from ..io.activity import Activity
    from ..spec.frontend import load_spec

    activity = Activity(enabled=not quiet)
    rs = load_spec(spec, root=root)
    with activity.step(f"compiling {spec}: measuring {_components(rs)} on the meta device"):
        from ..api import compile_resolved
        from .summary import print_summary

        compiled = compile_resolved(rs)
    _print_warnings(compiled.resolved)
    print_summary(compiled)
    if build:
        from ..errors import CompileError

        with activity.step("building the model" + (" (loading the components' weights)" if any(
                c.source.kind != "init" for c in rs.spec.components) else "")):
            model = compiled.model
        actual = sum(p.numel() for p in model.parameters())
        if actual != compiled.graph.total_params:
            raise CompileError(f"the built model has {actual} parameters but the graph says {compiled.graph.total_params}")
        click.echo(f"built: {actual:,} parameters, as the graph says")
    if out_dir is not None:
        for path in compiled.write(out_dir):
            click.echo(f"wrote {path}")


@main.command(short_help="Render a spec's block graph (text, dot, png).")
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt_", type=click.Choice(["text", "dot", "png"]), default="text", show_default=True)
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Output file (required for png; default stdout for text and dot).")
@click.option("--discretize", "selection", default=None, metavar="NAMES|argmax|budget",
              help="Show the discretized graph for comma-separated component names, one per block, or 'argmax', "
                   "or 'budget' (the most probable selection within hybrid.budget) of the spec's fixed alphas or "
                   "of a run's (--alphas); compile lists every choice and its cost.")
@click.option("--alphas", "alphas_run", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              metavar="RUN",
              help="A run of SPEC: --discretize argmax|budget takes its last searched alphas (a spec with "
                   "mixture: search has none of its own).")
def graph(spec: Path, fmt_: str, out: Path | None, selection: str | None, alphas_run: Path | None) -> None:
    """Render SPEC's block graph (configs only, no weights): text, Graphviz dot, or PNG (through Graphviz when
    installed, else matplotlib); with --discretize, the graph of one selection."""
    from ..api import compile as compile_spec
    from ..graph import render
    from ..graph.budget import selection_for
    from ..graph.selection import discretize_graph, select

    compiled = compile_spec(spec)
    bg = compiled.graph
    rs = compiled.resolved
    alphas = rs.alphas if alphas_run is None else _run_alphas(alphas_run, rs.names, bg.num_blocks)
    if selection is not None:
        names = [s.strip() for s in selection.split(",")]
        if names in (["argmax"], ["budget"]) and alphas is None:
            raise click.BadParameter(
                f"{spec} searches its mixture (mixture: {rs.spec.hybrid.mixture}): it has no alphas to discretize "
                f"until a run has searched them; give a run's with --alphas RUN (e.g. --alphas runs/{rs.spec.name}), "
                f"or name {bg.num_blocks} components, one per block", param_hint="--discretize")
        if names == ["budget"] and rs.spec.hybrid.budget is None:
            raise click.BadParameter(f"{spec} has no hybrid.budget; use 'argmax', or add a budget",
                                     param_hint="--discretize")
        if names == ["argmax"]:
            names = list(select(alphas, rs.names))
        elif names == ["budget"]:
            names = list(selection_for(rs, alphas))
        unknown = [n for n in names if n not in rs.names]
        if unknown or len(names) != bg.num_blocks:
            raise click.BadParameter(
                f"give {bg.num_blocks} component names from {', '.join(rs.names)}, or 'argmax', or 'budget' (the "
                "most probable selection within hybrid.budget)", param_hint="--discretize")
        bg = discretize_graph(rs, names)
    if fmt_ == "png":
        if out is None:
            raise click.UsageError("--format png needs -o FILE.png")
        render.to_png(bg, out)
        click.echo(f"wrote {out}")
        return
    text = render.to_text(bg) if fmt_ == "text" else render.to_dot(bg)
    if out is None:
        click.echo(text, nl=False)
    else:
        from ..io import atomic_write_text

        atomic_write_text(out, text)
        click.echo(f"wrote {out}")


def _run_alphas(run: Path, names: tuple[str, ...], blocks: int) -> list[list[float]]:
    """The last alphas a run of the spec logged (softmax of its logits, per block and component)."""
    from ..train.metrics import MetricsLog

    records = MetricsLog(run).records()
    stages = [e for e in records if e.get("event") == "stage"]
    steps = [e for e in records if e.get("event") == "train" and e.get("alphas")]
    if not steps:
        raise click.BadParameter(f"{run} logged no alphas (metrics.jsonl has none: not a run, or not one that "
                                 "searched)", param_hint="--alphas")
    if stages and stages[-1].get("components") not in (None, list(names)):
        raise click.BadParameter(f"{run} is a run of components {', '.join(map(str, stages[-1]['components']))}, "
                                 f"not of this spec's {', '.join(names)}", param_hint="--alphas")
    alphas = steps[-1]["alphas"]
    if (not isinstance(alphas, list) or len(alphas) != blocks
            or any(not isinstance(r, list) or len(r) != len(names) for r in alphas)):
        raise click.BadParameter(f"{run}'s alphas are not {blocks} rows of {len(names)}: not a run of this spec",
                                 param_hint="--alphas")
    return alphas


@main.command(short_help="Semantic diff of two specs.")
@click.argument("specs", nargs=-1, required=True, metavar="A B")
@click.option("--graph", "with_graph", is_flag=True, help="Also compare parameters and FLOPs per group (configs only).")
@click.option("--format", "fmt_", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--git-driver", is_flag=True, hidden=True, help="Called by git as diff.hybridc.command.")
@click.option("--color/--no-color", default=None, help="Colour (default: on a terminal).")
def diff(specs: tuple[str, ...], with_graph: bool, fmt_: str, git_driver: bool, color: bool | None) -> None:
    """Semantic diff of two specs A and B (files or git:REV:path), every key of the language compared: exit 0
    same, 1 different, 2 error (a spec that is not valid: a text diff of the files, then its errors)."""
    from .git import run_diff, run_git_driver

    if git_driver:
        run_git_driver(specs, with_graph=with_graph, color=color)
        return
    if len(specs) != 2:
        raise click.UsageError("give two specs: hybridc diff A B")
    sys.exit(run_diff(specs[0], specs[1], with_graph=with_graph, fmt=fmt_, color=color))


@main.command(name="git-setup", short_help="Make git diff show semantic diffs of specs.")
@click.argument("patterns", nargs=-1)
@click.option("--global", "global_", is_flag=True, help="Write the diff driver to your global git config.")
def git_setup(patterns: tuple[str, ...], global_: bool) -> None:
    """Make git diff (and git log -p --ext-diff) show semantic diffs of spec files, plain git log -p their
    canonical forms (PATTERNS default: specs/**/*.yaml and *.hybrid.yaml)."""
    from .git import setup_git

    for line in setup_git(list(patterns) or ["specs/**/*.yaml", "*.hybrid.yaml"], global_=global_):
        click.echo(line)


@main.command(short_help="Run a spec's training plan.")
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Run directory (default runs/<name>).")
@click.option("--resume", is_flag=True, help="Continue the run in the directory from its newest checkpoint.")
@click.option("--max-steps", type=click.IntRange(min=0), help="Cap every training stage at N steps (smoke runs).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--mixed-precision", type=click.Choice(["no", "bf16", "fp16"]), default="no", show_default=True,
              help="Autocast through Accelerate: bf16 on the CPU or a GPU; fp16 on a GPU only (--device cuda; "
              "refused on the CPU).")
@click.option("--scan", type=click.Choice(["auto", "fused", "chunked", "reference", "transformers"]), default="auto",
              show_default=True, help="Mamba selective scan: auto = mamba-ssm kernels on a GPU when installed, else "
              "the fused CPU scan (built with the C compiler on first use), else the chunked one; fused / chunked = "
              "that CPU scan; reference = the token loop; transformers = transformers' own path.")
@click.option("--num-processes", type=click.IntRange(min=1), default=1, show_default=True,
              help="Data-parallel processes on this machine (launched with torchrun; gloo on CPU).")
@click.option("--sharding", type=click.Choice(["ddp", "fsdp"]), default="ddp", show_default=True,
              help="With several processes: ddp = every process holds the whole model; fsdp = weights, gradients "
              "and optimizer state sharded over the processes (PyTorch FSDP2; component layers are the units).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or progress lines (stage summaries and results still print).")
@click.option("--report-to", default="none", show_default=True, metavar="TRACKERS",
              help="Also send the metrics to experiment trackers through Accelerate, comma-separated: tensorboard, "
              "wandb, mlflow, comet_ml, aim, clearml, dvclive, swanlab, trackio, all (every one installed) or none; "
              "local ones write under RUN/logs (metrics.jsonl is written either way).")
@_ROOT_OPTION
def train(spec: Path, out_dir: Path | None, resume: bool, max_steps: int | None, device: str, mixed_precision: str,
          scan: str, num_processes: int, sharding: str, quiet: bool, report_to: str, root: Path | None) -> None:
    """Run SPEC's training plan (see Training in the README): stages, checkpoints, metrics, plots, final/ and a
    table comparing the hybrid with each component on the test split."""
    from ..io.activity import Activity
    from ..spec.frontend import load_spec, lock_data
    from ..train.launch import check_precision, launched_alone
    from ..train.rundir import check_run_path, run_directory

    alone = launched_alone(os.environ)
    if alone is not None:
        from ..errors import LaunchError

        raise LaunchError(*alone)
    check_precision(device, mixed_precision)  # (before a launcher starts processes that would each refuse it)
    from ..train.tracking import parse_report_to

    trackers = parse_report_to(report_to)  # an unknown or missing tracker is said before anything runs
    rs = load_spec(spec, root=root)
    if int(os.environ.get("RANK", "0")) == 0:  # what needs no model is refused before torch loads
        check_run_path(run_directory(out_dir, rs.spec.name), lock_data(rs), resume)
    if num_processes > 1 and "WORLD_SIZE" not in os.environ:
        from ..train.launch import relaunch

        sys.exit(relaunch(num_processes, [a for a in sys.argv[1:]]))
    _print_warnings(rs)
    activity = Activity(enabled=not quiet and int(os.environ.get("RANK", "0")) == 0)
    with activity.step(f"compiling {spec}: {_components(rs)}, {rs.num_blocks} block{'s' * (rs.num_blocks != 1)}"):
        from .summary import print_results
        from ..train.run import TrainOptions
        from ..train.run import train as run_training

        _quiet_libraries()
    options = TrainOptions(out_dir=out_dir, resume=resume, max_steps=max_steps, device=device,
                           mixed_precision=mixed_precision, scan=scan, sharding=sharding, quiet=quiet,
                           report_to=trackers)
    result = run_training(rs, options, say=lambda text: click.echo(text, err=True))
    if int(os.environ.get("RANK", "0")) == 0:  # under a launcher, the main process reports
        print_results(result)


TASK_OPTIONS = ("include_path", "limit", "num_fewshot", "trust_remote_code")  # eval options of --tasks only
DATA_OPTIONS = ("split", "seed")  # ... and of --data only


@main.command(name="eval", short_help="Evaluate a model on a data split or lm-eval tasks.")
@click.argument("model_dir", type=ExistingDirectory(), metavar="RUN_OR_MODEL")
@click.option("--data", "data_expr", default=None, metavar="EXPR",
              help="A data expression, e.g. 'text(corpus.txt, block=256)'.")
@click.option("--tasks", default=None, metavar="T1,T2",
              help="Downstream tasks through lm-eval, comma-separated (instead of --data; needs hybridc[eval]).")
@click.option("--include-path", type=ExistingDirectory(), default=None,
              help="With --tasks: a directory of lm-eval task YAMLs of your own.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="With --tasks: at most N examples per task.")
@click.option("--num-fewshot", type=click.IntRange(min=0), default=None, help="With --tasks: few-shot examples.")
@click.option("--trust-remote-code", is_flag=True, default=False,
              help="With --tasks: let lm-eval run Python files the model directory names (its auto_map), as "
              "transformers' trust_remote_code=True does. Off by default: hybridc's own classes need none.")
@click.option("--split", type=click.Choice(["train", "valid", "test"]), default="test", show_default=True,
              help="With --data: the split evaluated.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Sequences per batch (default: the batch the run evaluated its test split with, else 8).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--seed", type=int, default=None,
              help="With --data: seed of the data split (default: the model's spec's data seed, so a run's splits "
              "are its own).")
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr (what the command prints still prints).")
@click.pass_context
def eval_cmd(ctx: click.Context, model_dir: Path, data_expr: str | None, tasks: str | None, include_path: Path | None,
             limit: int | None, num_fewshot: int | None, trust_remote_code: bool, split: str, batch_size: int | None,
             device: str, seed: int | None, quiet: bool) -> None:
    """Evaluate a run's final/, a saved hybrid or a plain export: on a split of a data expression (--data: loss,
    perplexity and accuracy, split with the model's spec seed and evaluated in the run's batch size, so a run's
    test numbers are its table's), or on downstream tasks through lm-eval (--tasks, needs hybridc[eval]; a run
    records the results in its metrics and model card). No file of the model directory runs as code unless
    --trust-remote-code is given."""
    from ..io.activity import Activity

    if (data_expr is None) == (tasks is None):
        raise click.UsageError("give --data (a data split) or --tasks (lm-eval tasks), one of them")
    given = {name for name in (*TASK_OPTIONS, *DATA_OPTIONS)
             if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT}
    misplaced = sorted(given & set(TASK_OPTIONS if data_expr is not None else DATA_OPTIONS))
    if misplaced:
        flags = ", ".join("--" + name.replace("_", "-") for name in misplaced)
        raise click.UsageError(f"{flags} belong{'s' * (len(misplaced) == 1)} to "
                               f"{'--tasks' if data_expr is not None else '--data'}, not to "
                               f"{'--data' if data_expr is not None else '--tasks'}")
    activity = Activity(enabled=not quiet)
    if tasks is not None:
        from rich.table import Table

        from ..io.terminal import PipeConsole
        from ..inference.downstream import evaluate_tasks, table_rows

        names = [t.strip() for t in tasks.split(",") if t.strip()]
        if not names:
            raise click.BadParameter(f"{tasks!r} names no task; give lm-eval task names, comma-separated "
                                     "(`lm_eval ls tasks` lists them)", param_hint="--tasks")
        results = evaluate_tasks(model_dir, names, include_path=include_path, limit=limit, num_fewshot=num_fewshot,
                                 batch_size=batch_size or 8, device=device, trust_remote_code=trust_remote_code,
                                 activity=activity)
        table = Table(title=f"lm-eval ({model_dir})")
        for column in ("task", "metric", "value"):
            table.add_column(column)
        for task, metric, value in table_rows(results):
            table.add_row(task, metric, f"{value:.4f}")
        PipeConsole().print(table)
        return
    from ..inference.evaluate import evaluate_directory

    result = evaluate_directory(model_dir, data_expr, split=split, batch_size=batch_size, device=device, seed=seed,
                                activity=activity)
    for key, value in result.items():
        click.echo(f"{key}: {value:.6g}" if isinstance(value, float) else f"{key}: {value}")


@main.command(short_help="Write the pruned model of a trained hybrid.")
@click.argument("model_dir", type=ExistingDirectory(), metavar="RUN_OR_MODEL")
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path),
              help="Output directory (default <model>-discretized beside it).")
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr (what the command prints still prints).")
def discretize(model_dir: Path, out: Path | None, quiet: bool) -> None:
    """Discretize a trained hybrid (a run or a saved hybrid): one component per block (argmax, or the budget's
    choice), the rest pruned, written as a standalone model (see Inference); an existing -o DIR is replaced only
    if it holds an earlier export."""
    from ..io.activity import Activity
    from ..io import PathRefused
    from ..models.load import check_before_loading

    activity = Activity(enabled=not quiet)
    source = check_before_loading(model_dir)
    with activity.step(f"loading the model in {source}"):
        from ..models.export import export
        from ..models.load import load_hybrid

        _quiet_libraries()
        model = load_hybrid(model_dir)
    if out is None:  # beside the model directory, named after it (its real name: `discretize .` too)
        here = model_dir.resolve()
        if not here.name:
            raise PathRefused(f"{model_dir} has no name to derive an output directory from", "give one with -o")
        out = here.parent / f"{here.name}-discretized"
    if out.resolve() == source.resolve():
        raise PathRefused(f"{out} is the model directory being discretized", "choose another -o directory")
    with activity.step(f"discretizing and writing {out}"):
        result = export(model, out)
    click.echo(f"selection: {' | '.join(result.selection)} (from {source})")
    if result.kind == "hybrid":
        click.echo(f"wrote {result.path}: a discretized hybrid (HybridModel.from_pretrained loads it)")
    else:
        click.echo(f"wrote {result.path}: every block kept the same component, exported as a plain {result.kind} "
                   "model (transformers' AutoModelForCausalLM loads it without hybridc)")


@main.command(short_help="Stream text generated from a model.")
@click.argument("model_dir", type=ExistingDirectory(), metavar="MODEL")
@click.argument("prompt")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--temperature", type=click.FloatRange(min=0.0), default=0.0, show_default=True,
              help="0: greedy decoding; > 0: sampling.")
@click.option("--top-k", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--num-beams", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--decode", type=click.Choice(["fast", "eager"]), default="fast", show_default=True,
              help="How a hybrid decodes a token: fast (hybridc's kernels: Mamba's step in one C call per layer, "
                   "a batch's linear maps) or eager (transformers' own steps, the reference).")
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr (what the command prints still prints).")
def generate(model_dir: Path, prompt: str, max_new_tokens: int, temperature: float, top_k: int, num_beams: int,
             seed: int, device: str, decode: str, quiet: bool) -> None:
    """Stream text generated from a run, a saved hybrid or a plain export, with the tokenizer saved in it
    (greedy, sampled with --temperature and --top-k, or beam search)."""
    from ..io.activity import Activity
    from ..inference.generate import generate_text

    activity = Activity(enabled=not quiet)
    generate_text(model_dir, prompt, max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k,
                  num_beams=num_beams, seed=seed, device=device, decode=decode, activity=activity)


def _quiet_libraries() -> None:
    """The few library messages that do not concern hybridc's users dropped, transformers' progress bars off
    (the command shows its own): ``hybridc.components.quiet``."""
    from ..components.quiet import for_command

    for_command()



if __name__ == "__main__":  # pragma: no cover
    main()

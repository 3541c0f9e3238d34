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

from .errors import HybridcError

EXIT_USAGE = 2


class _Group(click.Group):
    # commands that live in other modules, imported only when used (start-up time of validate/fmt)
    LAZY = {"mad": "hybridc.experiments.commands:mad", "sweep": "hybridc.experiments.commands:sweep",
            "program": "hybridc.experiments.commands:program"}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.LAZY])

    def get_command(self, ctx: click.Context, name: str):
        if name in self.LAZY:
            from importlib import import_module

            module, _, attr = self.LAZY[name].partition(":")
            return getattr(import_module(module), attr)
        return super().get_command(ctx, name)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
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
        except Exception as err:  # a bug in hybridc: say so, briefly
            if os.environ.get("HYBRIDC_DEBUG"):
                raise
            click.echo(f"internal error: {type(err).__name__}: {err}", err=True)
            click.echo("hint: this is a bug in hybridc; rerun with HYBRIDC_DEBUG=1 for a traceback and report it",
                       err=True)
            sys.exit(70)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hybridc")
def main() -> None:
    """hybridc: compile YAML specs into pretrained hybrid language models."""
    from .train.threads import clamp_omp_threads

    lowered = clamp_omp_threads()  # (before torch loads: its OpenMP runtime reads it once)
    if lowered is not None:
        click.echo(f"warning: {lowered}", err=True)


def _print_warnings(rs) -> None:
    for w in rs.warnings:
        click.echo(w.render(), err=True)


@main.command()
def families() -> None:
    """List the model families hybridc runs as components (from: a checkpoint of one, or init: {family: ...})."""
    from rich.console import Console
    from rich.table import Table

    from .components.architectures import ARCHITECTURES, kind, notes

    table = Table(title=f"{len(ARCHITECTURES)} families")
    for column in ("family", "model type", "transformers class", "layers", "notes"):
        table.add_column(column, overflow="fold")
    for name in sorted(ARCHITECTURES):
        architecture = ARCHITECTURES[name]
        table.add_row(name, architecture.model_type, architecture.model_class, kind(architecture), notes(architecture))
    Console(soft_wrap=False).print(table)


_ROOT_OPTION = click.option(
    "--root", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
    help="Refuse local paths in the spec (models, tokenizer, data, alphas) that resolve outside DIR.")


@main.command()
@click.argument("specs", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@_ROOT_OPTION
def validate(specs: tuple[Path, ...], root: Path | None) -> None:
    """Check SPECS (every error at once, located); exit 2 if any is invalid."""
    from .errors import SpecError
    from .spec.frontend import load_spec

    failed = []
    for path in specs:
        try:
            rs = load_spec(path, root=root)
        except SpecError as err:
            click.echo(err.render(), err=True)
            failed.append(path)
            continue
        if rs.spec.hybrid.budget is not None:  # can any discretization fit it? (needs the components' costs)
            from .graph.budget import check_budget

            try:
                check_budget(rs)
            except SpecError as err:
                click.echo(err.render(), err=True)
                failed.append(path)
                continue
        _print_warnings(rs)
        blocks = rs.num_blocks
        click.echo(f"{path}: ok ({len(rs.components)} component{'s' * (len(rs.components) != 1)}, "
                   f"{blocks} block{'s' * (blocks != 1)}, width {rs.width})")
    if failed:
        sys.exit(EXIT_USAGE)


@main.command()
@click.argument("specs", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--check", is_flag=True, help="Exit 1 if a file is not in canonical form; change nothing.")
@click.option("--write", "-w", is_flag=True, help="Rewrite the files in canonical form.")
@click.option("--no-comments", is_flag=True, help="Drop comments (the pure canonical form).")
@click.option("--textconv", is_flag=True, hidden=True,
              help="For git: canonical form without comments, or the file as it is when it does not parse.")
def fmt(specs: tuple[Path, ...], check: bool, write: bool, no_comments: bool, textconv: bool) -> None:
    """Print SPECS in canonical form (all defaults explicit, stable order, comments kept)."""
    from .errors import SpecError
    from .io import atomic_write_text
    from .spec.frontend import parse_file

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


@main.command()
@click.argument("specs", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--examples", "-n", type=click.IntRange(min=1), default=20, show_default=True,
              help="Variations of each spec to draw and check.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the variations (the same seed draws the same ones).")
def check(specs: tuple[Path, ...], examples: int, seed: int) -> None:
    """Property-check SPECS: hybridc's invariants on each spec and N variations of it (one change each), with
    tiny stand-ins of its components; prints the smallest failing variation. Exit 1 if one fails, 2 if a spec
    is invalid. Needs hybridc[testing] (hypothesis)."""
    from .errors import SpecError
    from .testing.report import run_check

    _quiet_libraries()
    status = 0
    for path in specs:
        try:
            status = max(status, run_check(path, examples=examples, seed=seed))
        except SpecError as err:
            click.echo(err.render(), err=True)
            status = EXIT_USAGE
    sys.exit(status)


@main.command(name="compile")
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write spec.lock.yaml, plan.json and graph.dot here.")
@click.option("--build", is_flag=True, help="Also lower to a PyTorch model (loads weights) and check it.")
@_ROOT_OPTION
def compile_cmd(spec: Path, out_dir: Path | None, build: bool, root: Path | None) -> None:
    """Compile SPEC: print the hybrid's summary; write the lock, plan and graph with -o."""
    from .api import compile as compile_spec
    from .spec.frontend import load_spec
    from .summary import print_summary

    compiled = compile_spec(load_spec(spec, root=root))
    _print_warnings(compiled.resolved)
    print_summary(compiled)
    if build:
        from .errors import CompileError

        model = compiled.model
        actual = sum(p.numel() for p in model.parameters())
        if actual != compiled.graph.total_params:
            raise CompileError(f"the built model has {actual} parameters but the graph says {compiled.graph.total_params}")
        click.echo(f"built: {actual:,} parameters, as the graph says")
    if out_dir is not None:
        for path in compiled.write(out_dir):
            click.echo(f"wrote {path}")


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt_", type=click.Choice(["text", "dot", "png"]), default="text", show_default=True)
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Output file (required for png; default stdout for text and dot).")
@click.option("--discretize", "selection", default=None,
              help="Show the discretized graph for comma-separated component names, one per block (or "
                   "'argmax', or 'budget' for fixed alphas; compile lists every choice and its cost).")
def graph(spec: Path, fmt_: str, out: Path | None, selection: str | None) -> None:
    """Render SPEC's block graph (configs only, no weights)."""
    from .api import compile as compile_spec
    from .graph import render
    from .graph.budget import selection_for
    from .graph.discretize import discretize_graph, select

    compiled = compile_spec(spec)
    bg = compiled.graph
    if selection is not None:
        names = [s.strip() for s in selection.split(",")]
        if names == ["argmax"] and compiled.resolved.alphas is not None:
            names = list(select(compiled.resolved.alphas, compiled.resolved.names))
        if names == ["budget"] and compiled.resolved.alphas is not None and compiled.resolved.spec.hybrid.budget:
            names = list(selection_for(compiled.resolved, compiled.resolved.alphas))
        unknown = [n for n in names if n not in compiled.resolved.names]
        if unknown or len(names) != bg.num_blocks:
            raise click.BadParameter(
                f"give {bg.num_blocks} component names from {', '.join(compiled.resolved.names)} (or, for fixed "
                "alphas, 'argmax', or 'budget': the most probable selection within hybrid.budget)",
                param_hint="--discretize")
        bg = discretize_graph(compiled.resolved, names)
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
        from .io import atomic_write_text

        atomic_write_text(out, text)
        click.echo(f"wrote {out}")


@main.command()
@click.argument("specs", nargs=-1, required=True)
@click.option("--graph", "with_graph", is_flag=True, help="Also compare parameters and FLOPs per group (configs only).")
@click.option("--format", "fmt_", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--git-driver", is_flag=True, hidden=True, help="Called by git as diff.hybridc.command.")
@click.option("--color/--no-color", default=None, help="Colour (default: on a terminal).")
def diff(specs: tuple[str, ...], with_graph: bool, fmt_: str, git_driver: bool, color: bool | None) -> None:
    """Semantic diff of two specs (files or git:REV:path): exit 0 same, 1 different, 2 error."""
    from .diffing import run_diff, run_git_driver

    if git_driver:
        run_git_driver(specs, with_graph=with_graph, color=color)
        return
    if len(specs) != 2:
        raise click.UsageError("give two specs: hybridc diff A B")
    sys.exit(run_diff(specs[0], specs[1], with_graph=with_graph, fmt=fmt_, color=color))


@main.command(name="git-setup")
@click.argument("patterns", nargs=-1)
@click.option("--global", "global_", is_flag=True, help="Write the diff driver to your global git config.")
def git_setup(patterns: tuple[str, ...], global_: bool) -> None:
    """Make `git diff` / `git log -p` show semantic diffs of spec files (PATTERNS default: specs/**/*.yaml)."""
    from .diffing import setup_git

    for line in setup_git(list(patterns) or ["specs/**/*.yaml", "*.hybrid.yaml"], global_=global_):
        click.echo(line)


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Run directory (default runs/<name>).")
@click.option("--resume", is_flag=True, help="Continue the run in the directory from its newest checkpoint.")
@click.option("--max-steps", type=click.IntRange(min=0), help="Cap every training stage at N steps (smoke runs).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--mixed-precision", type=click.Choice(["no", "bf16", "fp16"]), default="no", show_default=True,
              help="Autocast through Accelerate (fp16 needs a GPU).")
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
@_ROOT_OPTION
def train(spec: Path, out_dir: Path | None, resume: bool, max_steps: int | None, device: str, mixed_precision: str,
          scan: str, num_processes: int, sharding: str, quiet: bool, root: Path | None) -> None:
    """Run SPEC's training plan: stages, checkpoints, metrics, plots, final/ and a comparison table."""
    from .spec.frontend import load_spec
    from .summary import print_results
    from .train.run import TrainOptions
    from .train.run import train as run_training

    from .train.launch import launched_alone

    alone = launched_alone(os.environ)
    if alone is not None:
        from .errors import LaunchError

        raise LaunchError(*alone)
    rs = load_spec(spec, root=root)
    if num_processes > 1 and "WORLD_SIZE" not in os.environ:
        from .train.launch import relaunch

        sys.exit(relaunch(num_processes, [a for a in sys.argv[1:]]))
    _print_warnings(rs)
    _quiet_libraries()
    options = TrainOptions(out_dir=out_dir, resume=resume, max_steps=max_steps, device=device,
                           mixed_precision=mixed_precision, scan=scan, sharding=sharding, quiet=quiet)
    result = run_training(rs, options, say=lambda text: click.echo(text, err=True))
    if int(os.environ.get("RANK", "0")) == 0:  # under a launcher, the main process reports
        print_results(result)


@main.command(name="eval")
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--data", "data_expr", default=None, help="A data expression, e.g. 'text(corpus.txt, block=256)'.")
@click.option("--tasks", default=None,
              help="Downstream tasks through lm-eval, comma-separated (instead of --data; needs hybridc[eval]).")
@click.option("--include-path", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="With --tasks: a directory of lm-eval task YAMLs of your own.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="With --tasks: at most N examples per task.")
@click.option("--num-fewshot", type=click.IntRange(min=0), default=None, help="With --tasks: few-shot examples.")
@click.option("--split", type=click.Choice(["train", "valid", "test"]), default="test", show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Sequences per batch (default: the batch the run evaluated its test split with, else 8).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--seed", type=int, default=None,
              help="Seed of the data split (default: the model's spec seed, so a run's splits are its own).")
def eval_cmd(model_dir: Path, data_expr: str | None, tasks: str | None, include_path: Path | None, limit: int | None,
             num_fewshot: int | None, split: str, batch_size: int | None, device: str, seed: int | None) -> None:
    """Evaluate a run (its final/), a saved hybrid or a plain export: on a data split (--data: loss, perplexity,
    accuracy), or on downstream tasks through lm-eval (--tasks; a run records them in its metrics and card)."""
    if (data_expr is None) == (tasks is None):
        raise click.UsageError("give --data (a data split) or --tasks (lm-eval tasks), one of them")
    _quiet_libraries()
    if tasks is not None:
        from rich.console import Console
        from rich.table import Table

        from .train.downstream import evaluate_tasks, table_rows

        names = [t.strip() for t in tasks.split(",") if t.strip()]
        results = evaluate_tasks(model_dir, names, include_path=include_path, limit=limit, num_fewshot=num_fewshot,
                                 batch_size=batch_size or 8, device=device)
        table = Table(title=f"lm-eval ({model_dir})")
        for column in ("task", "metric", "value"):
            table.add_column(column)
        for task, metric, value in table_rows(results):
            table.add_row(task, metric, f"{value:.4f}")
        Console().print(table)
        return
    from .train.evaluate import evaluate_directory

    result = evaluate_directory(model_dir, data_expr, split=split, batch_size=batch_size, device=device, seed=seed)
    for key, value in result.items():
        click.echo(f"{key}: {value:.6g}" if isinstance(value, float) else f"{key}: {value}")


@main.command()
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path),
              help="Output directory (default <model>-discretized beside it).")
def discretize(model_dir: Path, out: Path | None) -> None:
    """Discretize a trained hybrid (a run or a saved hybrid): one component per block, the rest pruned."""
    from .discretize import export
    from .io import PathRefused
    from .saved import load_hybrid, model_directory

    _quiet_libraries()
    source = model_directory(model_dir)
    model = load_hybrid(model_dir)
    if out is None:  # beside the model directory, named after it (its real name: `discretize .` too)
        here = model_dir.resolve()
        if not here.name:
            raise PathRefused(f"{model_dir} has no name to derive an output directory from", "give one with -o")
        out = here.parent / f"{here.name}-discretized"
    if out.resolve() == source.resolve():
        raise PathRefused(f"{out} is the model directory being discretized", "choose another -o directory")
    result = export(model, out)
    click.echo(f"selection: {' | '.join(result.selection)} (from {source})")
    if result.kind == "hybrid":
        click.echo(f"wrote {result.path}: a discretized hybrid (HybridModel.from_pretrained loads it)")
    else:
        click.echo(f"wrote {result.path}: every block kept the same component, exported as a plain {result.kind} "
                   "model (transformers' AutoModelForCausalLM loads it without hybridc)")


@main.command()
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("prompt")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--temperature", type=click.FloatRange(min=0.0), default=0.0, show_default=True,
              help="0: greedy decoding; > 0: sampling.")
@click.option("--top-k", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--num-beams", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
def generate(model_dir: Path, prompt: str, max_new_tokens: int, temperature: float, top_k: int, num_beams: int,
             seed: int, device: str) -> None:
    """Generate text from a hybrid (a run or a saved hybrid), streaming tokens as they come."""
    from .generate import generate_text

    _quiet_libraries()
    generate_text(model_dir, prompt, max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k,
                  num_beams=num_beams, seed=seed, device=device)


def _quiet_libraries() -> None:
    """transformers' info/warning chatter (e.g. Mamba's CPU fallback notice) is not for our users."""
    import warnings

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=UserWarning, module="torch")



if __name__ == "__main__":  # pragma: no cover
    main()

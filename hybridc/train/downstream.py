"""``hybridc eval --tasks``: downstream evaluation of a saved hybrid through lm-eval.

The model directory (a run's ``final/``, a saved hybrid, or a plain export) is loaded by lm-eval's own
``HFLM`` as any transformers client loads it, with the model's real context length
(``max_position_embeddings``). No file of the directory runs as code unless the user asks
(``trust_remote_code``, ``--trust-remote-code``): hybridc's own classes are registered with transformers in
this process, so a saved hybrid needs none of the directory's ``auto_map`` modules. Results are returned per
task and metric; for a run directory they are also appended to its ``metrics.jsonl`` (an ``lm_eval`` event)
and written into its model card (``final/README.md``).
"""

from __future__ import annotations

import math
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import HybridcError, RunError, first_line

CARD_BEGIN, CARD_END = "<!-- lm-eval:begin -->", "<!-- lm-eval:end -->"
REMOTE_HINT = ("hybridc's own classes need no remote code; for a model whose own code must run, and that you "
               "trust, add --trust-remote-code")


def evaluate_tasks(directory: Path, tasks: list[str], *, include_path: Path | None = None, limit: int | None = None,
                   num_fewshot: int | None = None, batch_size: int = 8, device: str = "cpu",
                   trust_remote_code: bool = False) -> dict[str, dict[str, float]]:
    """lm-eval's ``simple_evaluate`` of the model in ``directory`` on ``tasks``: {task: {metric: value}}."""
    from ..saved import check_generation_config, model_directory, read_config
    from ..spec.checks import TOKENIZER_FILES

    if not tasks:
        raise RunError("no lm-eval task was named", "give task names, comma-separated (`lm_eval ls tasks` lists them)")
    run_dir = Path(directory) if (Path(directory) / "final").is_dir() else None
    model_dir = model_directory(Path(directory))
    if not any((model_dir / name).is_file() for name in TOKENIZER_FILES):
        raise RunError(f"{model_dir} has no tokenizer, which lm-eval's tasks need (they are text)",
                       "train the model with a tokenizer (bytes, a tokenizer directory, hf:<id> or a component with "
                       "tokenizer files); a model trained on token ids (synthetic data) is evaluated with --data")
    read_config(model_dir)  # (its JSON files checked as hybridc checks them, before lm-eval reads them)
    check_generation_config(model_dir)
    try:
        import lm_eval
        from lm_eval.models.huggingface import HFLM
        from lm_eval.tasks import TaskManager
    except ImportError:
        raise RunError("downstream evaluation needs lm-eval, which is not installed",
                       "pip install 'hybridc[eval]'") from None
    manager = TaskManager(include_path=str(include_path) if include_path else None)
    unknown = [t for t in tasks if not manager.match_tasks([t])]
    if unknown:
        raise RunError(f"lm-eval knows no task {', '.join(repr(t) for t in unknown)}",
                       "name tasks lm-eval lists (`lm_eval ls tasks`), or give your own task YAMLs with --include-path")
    try:
        lm = HFLM(pretrained=str(model_dir), trust_remote_code=trust_remote_code, batch_size=batch_size,
                  device=device)
    except HybridcError:
        raise
    except Exception as err:  # transformers' refusal of remote code, a tokenizer it cannot read, ...
        remote = "trust_remote_code" in str(err)
        raise RunError(f"lm-eval cannot load the model in {model_dir}: {type(err).__name__}: {first_line(err)}",
                       REMOTE_HINT if remote else "hybridc eval MODEL --data EXPR loads it as hybridc does; "
                       "check that `hybridc generate` runs on it") from None
    with _quiet_git():
        output = lm_eval.simple_evaluate(model=lm, tasks=tasks, task_manager=manager, limit=limit,
                                         num_fewshot=num_fewshot)
    results = {task: {metric.replace(",none", ""): float(value) for metric, value in scores.items()
                      if isinstance(value, (int, float)) and not isinstance(value, bool)}
               for task, scores in output["results"].items()}
    if run_dir is not None:
        record(run_dir, tasks, results, context=lm.max_length)
    return results


@contextmanager
def _quiet_git():
    """lm-eval records the git commit of the working directory by running ``git describe``, whose "fatal: not a
    git repository" lands on the user's terminal outside a repository: asked quietly here instead."""
    from lm_eval import evaluator

    original = getattr(evaluator, "get_git_commit_hash", None)

    def commit() -> str | None:
        try:
            done = subprocess.run(["git", "describe", "--always"], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return (done.stdout.strip() or None) if done.returncode == 0 else None

    if original is None:
        yield
        return
    evaluator.get_git_commit_hash = commit
    try:
        yield
    finally:
        evaluator.get_git_commit_hash = original


def record(run_dir: Path, tasks: list[str], results: dict[str, dict[str, float]], context: int) -> None:
    """Append the results to the run's metrics.jsonl and put them in its model card (final/README.md), never
    through a link (``hybridc.guarded_dir``)."""
    from ..guarded_dir import GuardedDir
    from .metrics import MetricsLog

    with GuardedDir.open(run_dir) as run:
        MetricsLog(run).write(event="lm_eval", tasks=tasks, context=context, results=results)
        with run.child("final") as final:
            if final.is_file("README.md"):
                final.write_text("README.md", with_results(final.read_text("README.md"), results, context))


def with_results(card: str, results: dict[str, dict[str, float]], context: int) -> str:
    """A model card with its "Downstream evaluation" section (replaced if there is one)."""
    rows = ["| task | metric | value |", "|---|---|---:|"]
    for task in sorted(results):
        for metric, value in sorted(results[task].items()):
            if not metric.endswith("_stderr") and math.isfinite(value):
                rows.append(f"| {task} | {metric} | {value:.4f} |")
    section = "\n".join([CARD_BEGIN, "## Downstream evaluation (lm-eval)", "",
                         f"`hybridc eval --tasks` through lm-eval, context {context} tokens:", "", *rows, CARD_END])
    if CARD_BEGIN in card and CARD_END in card:
        return card[: card.index(CARD_BEGIN)] + section + card[card.index(CARD_END) + len(CARD_END):]
    head, marker, spec = card.partition("\n## Spec\n")
    return f"{head}\n{section}\n{marker}{spec}" if marker else f"{card.rstrip()}\n\n{section}\n"


def table_rows(results: dict[str, dict[str, float]]) -> list[tuple[str, str, Any]]:
    return [(task, metric, value) for task in sorted(results) for metric, value in sorted(results[task].items())
            if not metric.endswith("_stderr")]

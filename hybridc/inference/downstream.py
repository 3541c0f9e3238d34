"""``hybridc eval --tasks``: downstream evaluation of a saved hybrid through lm-eval.

The model directory (a run's ``final/``, a saved hybrid, or a plain export) is loaded by lm-eval's own
``HFLM`` as any transformers client loads it, with the model's real context length: ``max_position_embeddings``,
or, for a model of recurrent components only (no position limit, so lm-eval would read its tokenizer's unbounded
length, 1e9 for ``bytes``), the length it was trained on (``trained_context``). No file of the directory runs as
code unless the user asks (``trust_remote_code``, ``--trust-remote-code``): hybridc's own classes are registered
with transformers in this process, so a saved hybrid needs none of the directory's ``auto_map`` modules. Results
are returned per task and metric; for a run directory they are also appended to its ``metrics.jsonl`` (an
``lm_eval`` event) and written into its model card (``final/README.md``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import HybridcError, RunError, first_line

if TYPE_CHECKING:
    from ..io.activity import Activity

CARD_BEGIN, CARD_END = "<!-- lm-eval:begin -->", "<!-- lm-eval:end -->"
REMOTE_HINT = ("hybridc's own classes need no remote code; for a model whose own code must run, and that you "
               "trust, add --trust-remote-code")


def evaluate_tasks(directory: Path, tasks: list[str], *, include_path: Path | None = None, limit: int | None = None,
                   num_fewshot: int | None = None, batch_size: int = 8, device: str = "cpu",
                   trust_remote_code: bool = False, activity: Activity | None = None) -> dict[str, dict[str, float]]:
    """lm-eval's ``simple_evaluate`` of the model in ``directory`` on ``tasks``: {task: {metric: value}}.
    ``activity`` shows the loading (lm-eval shows its own progress after)."""
    from ..io.activity import Activity
    from ..components.quiet import install, quiet_lm_eval_git
    from ..models.format import check_generation_config, model_directory, read_config
    from ..spec.checks import TOKENIZER_FILES

    if not tasks:
        raise RunError("no lm-eval task was named", "give task names, comma-separated (`lm_eval ls tasks` lists them)")
    activity = activity if activity is not None else Activity(enabled=False)
    run_dir = Path(directory) if (Path(directory) / "final").is_dir() else None
    model_dir = model_directory(Path(directory))
    if not any((model_dir / name).is_file() for name in TOKENIZER_FILES):
        raise RunError(f"{model_dir} has no tokenizer, which lm-eval's tasks need (they are text)",
                       "train the model with a tokenizer (bytes, a tokenizer directory, hf:<id> or a component with "
                       "tokenizer files); a model trained on token ids (synthetic data) is evaluated with --data")
    read_config(model_dir)  # (its JSON files checked as hybridc checks them, before lm-eval reads them)
    check_generation_config(model_dir)
    with activity.step(f"loading lm-eval and the model in {model_dir}"):
        try:
            import lm_eval
            from lm_eval.models.huggingface import HFLM
            from lm_eval.tasks import TaskManager
        except ImportError:
            raise RunError("downstream evaluation needs lm-eval, which is not installed",
                           "pip install 'hybridc[eval]'") from None
        install()
        manager = TaskManager(include_path=str(include_path) if include_path else None)
        unknown = [t for t in tasks if not manager.match_tasks([t])]
        if unknown:
            raise RunError(f"lm-eval knows no task {', '.join(repr(t) for t in unknown)}",
                           "name tasks lm-eval lists (`lm_eval ls tasks`), or give your own task YAMLs with "
                           "--include-path")
        context = trained_context(model_dir)
        try:
            lm = HFLM(pretrained=str(model_dir), trust_remote_code=trust_remote_code, batch_size=batch_size,
                      device=device, **({"max_length": context} if context is not None else {}))
        except HybridcError:
            raise
        except Exception as err:  # transformers' refusal of remote code, a tokenizer it cannot read, ...
            remote = "trust_remote_code" in str(err)
            raise RunError(f"lm-eval cannot load the model in {model_dir}: {type(err).__name__}: {first_line(err)}",
                           REMOTE_HINT if remote else "hybridc eval MODEL --data EXPR loads it as hybridc does; "
                           "check that `hybridc generate` runs on it") from None
    with quiet_lm_eval_git():  # (git's "fatal: not a git repository" from lm-eval's commit lookup: hybridc.components.quiet)
        output = lm_eval.simple_evaluate(model=lm, tasks=tasks, task_manager=manager, limit=limit,
                                         num_fewshot=num_fewshot)
    results = {task: {metric.replace(",none", ""): float(value) for metric, value in scores.items()
                      if isinstance(value, (int, float)) and not isinstance(value, bool)}
               for task, scores in output["results"].items()}
    if run_dir is not None:
        record(run_dir, tasks, results, context=lm.max_length)
    return results


CONTEXT_KEYS = ("n_positions", "max_position_embeddings", "n_ctx")  # what lm-eval reads a config's context from


def trained_context(model_dir: Path) -> int | None:
    """The context lm-eval should use for a model whose config names no positions (``CONTEXT_KEYS``: its
    running components are all recurrent, without a limit): the longest sequence its spec trained on (a
    ``block`` or ``length`` of a stage's data). None when the config names one (lm-eval reads it), or when
    nothing says (no spec, or data of a preset's length)."""
    from ..models.format import check_hybrid_config, read_config, read_export_record

    config = read_config(model_dir)
    if any(config.get(key) is not None for key in CONTEXT_KEYS):
        return None
    resolved = (check_hybrid_config(config, model_dir / "config.json") if config.get("model_type") == "hybridc"
                else read_export_record(model_dir))
    if resolved is None:
        return None
    lengths = [stage.data.arg("block") or stage.data.arg("length") for stage in resolved.spec.train.stages
               if stage.data is not None]
    lengths = [n for n in lengths if isinstance(n, int) and not isinstance(n, bool)]
    return max(lengths) if lengths else None


def record(run_dir: Path, tasks: list[str], results: dict[str, dict[str, float]], context: int) -> None:
    """Append the results to the run's metrics.jsonl and put them in its model card (final/README.md), never
    through a link (``hybridc.io.guarded_dir``)."""
    from ..io.guarded_dir import GuardedDir
    from ..train.metrics import MetricsLog

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

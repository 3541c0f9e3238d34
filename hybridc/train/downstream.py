"""``hybridc eval --tasks``: downstream evaluation of a saved hybrid through lm-eval.

The model directory (a run's ``final/``, a saved hybrid, or a plain export) is loaded by lm-eval's own
``HFLM`` as any transformers client loads it (``trust_remote_code=True``: the directory's ``auto_map``), with
the model's real context length (``max_position_embeddings``). Results are returned per task and metric;
for a run directory they are also appended to its ``metrics.jsonl`` (an ``lm_eval`` event) and written into
its model card (``final/README.md``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..errors import RunError

CARD_BEGIN, CARD_END = "<!-- lm-eval:begin -->", "<!-- lm-eval:end -->"


def evaluate_tasks(directory: Path, tasks: list[str], *, include_path: Path | None = None, limit: int | None = None,
                   num_fewshot: int | None = None, batch_size: int = 8, device: str = "cpu") -> dict[str, dict[str, float]]:
    """lm-eval's ``simple_evaluate`` of the model in ``directory`` on ``tasks``: {task: {metric: value}}."""
    from ..saved import model_directory

    try:
        import lm_eval
        from lm_eval.models.huggingface import HFLM
        from lm_eval.tasks import TaskManager
    except ImportError:
        raise RunError("downstream evaluation needs lm-eval, which is not installed",
                       "pip install 'hybridc[eval]'") from None
    run_dir = Path(directory) if (Path(directory) / "final").is_dir() else None
    model_dir = model_directory(Path(directory))
    manager = TaskManager(include_path=str(include_path) if include_path else None)
    unknown = [t for t in tasks if not manager.match_tasks([t])]
    if unknown:
        raise RunError(f"lm-eval knows no task {', '.join(repr(t) for t in unknown)}",
                       "name tasks lm-eval lists (`lm_eval ls tasks`), or give your own task YAMLs with --include-path")
    lm = HFLM(pretrained=str(model_dir), trust_remote_code=True, batch_size=batch_size, device=device)
    output = lm_eval.simple_evaluate(model=lm, tasks=tasks, task_manager=manager, limit=limit,
                                     num_fewshot=num_fewshot)
    results = {task: {metric.replace(",none", ""): float(value) for metric, value in scores.items()
                      if isinstance(value, (int, float)) and not isinstance(value, bool)}
               for task, scores in output["results"].items()}
    if run_dir is not None:
        record(run_dir, tasks, results, context=lm.max_length)
    return results


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

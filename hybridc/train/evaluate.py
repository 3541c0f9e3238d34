"""``hybridc eval``: a saved hybrid (or a run's final/) on a split of a data expression."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import Diagnostic, Location, SpecError
from ..spec.canonical import _Builder, bind_call
from ..spec.model import DataSource
from ..spec.signatures import DATA_SOURCES
from ..spec.tree import Scalar
from .loop import evaluate


def run_eval_batch_size(spec) -> int:
    """The batch a run evaluates its test split with: that of its last stage with data (see ``Run.finish``)."""
    from .run import eval_batch_size, last_data_stage

    stage = last_data_stage(spec)
    return eval_batch_size(stage) if stage is not None else 8


def parse_data_expression(text: str, origin: str = "--data") -> DataSource:
    """A data expression given on the command line, checked like the spec's (located at column)."""
    builder = _Builder(origin)
    node = Scalar(Location(origin, 1, 1), text, text)
    parsed = builder.parse(node, "data source")
    bound = bind_call(builder, node, parsed, DATA_SOURCES, "data source") if parsed is not None else None
    if builder.diags or bound is None:
        raise SpecError(builder.diags or [Diagnostic(node.loc, f"invalid data expression '{text}'")])
    return DataSource(*bound)


def evaluate_directory(directory: Path, data_expr: str, *, split: str = "test", batch_size: int | None = None,
                       device: str = "cpu", seed: int | None = None) -> dict:
    """A saved hybrid, a run's final/ or a plain export of ``hybridc discretize`` on a split of ``data_expr``,
    tokenized by the tokenizer saved with the model and split with the model's spec seed (``seed``
    overrides it), in batches of the size the run evaluated with (``batch_size`` overrides it): a run's
    test split and numbers are the ones its training table reports."""
    from ..data import build_data
    from ..saved import load_saved

    source = parse_data_expression(data_expr)
    saved = load_saved(directory, device)
    tokenizer = saved.need_tokenizer() if source.name in ("text", "classify") else None
    bundle = build_data(source, task=saved.task, tokenizer=tokenizer, seed=saved.seed if seed is None else seed,
                        base_dir=Path.cwd(), location=Location("--data", 1, 1))
    if batch_size is None:
        batch_size = run_eval_batch_size(saved.resolved.spec) if saved.resolved is not None else 8
    result = evaluate(saved.model, getattr(bundle, split), batch_size, torch.device(device), task=saved.task.kind)
    return {"data": data_expr, "split": split, **result}

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


def parse_data_expression(text: str, origin: str = "--data") -> DataSource:
    """A data expression given on the command line, checked like the spec's (located at column)."""
    builder = _Builder(origin)
    node = Scalar(Location(origin, 1, 1), text, text)
    parsed = builder.parse(node, "data source")
    bound = bind_call(builder, node, parsed, DATA_SOURCES, "data source") if parsed is not None else None
    if builder.diags or bound is None:
        raise SpecError(builder.diags or [Diagnostic(node.loc, f"invalid data expression '{text}'")])
    return DataSource(*bound)


def evaluate_directory(directory: Path, data_expr: str, *, split: str = "test", batch_size: int = 8,
                       device: str = "cpu") -> dict:
    from ..data import build_data, load_tokenizer
    from ..generate import load_hybrid

    source = parse_data_expression(data_expr)
    model = load_hybrid(directory, device)
    rs = model.resolved_spec
    tokenizer = load_tokenizer(rs) if source.name in ("text", "classify") else None
    bundle = build_data(source, task=rs.spec.task, tokenizer=tokenizer, seed=rs.spec.train.seed, base_dir=Path.cwd(),
                        location=Location("--data", 1, 1))
    result = evaluate(model, getattr(bundle, split), batch_size, torch.device(device))
    return {"data": data_expr, "split": split, **result}

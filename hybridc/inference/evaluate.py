"""``hybridc eval``: a saved hybrid (or a run's final/) on a split of a data expression."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import Diagnostic, Location, SpecError
from ..spec.canonical import _Builder, bind_call
from ..spec.model import DataSource
from ..spec.signatures import DATA_SOURCES
from ..spec.tree import Scalar

if TYPE_CHECKING:  # (torch is imported when a model loads: the command says what it does first)
    from ..io.activity import Activity


def run_eval_batch_size(spec) -> int:
    """The batch a run evaluates its test split with: that of its last stage with data (see ``Run.finish``)."""
    from ..train.finish import eval_batch_size, last_data_stage

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
                       device: str = "cpu", seed: int | None = None, activity: Activity | None = None) -> dict:
    """A saved hybrid, a run's final/ or a plain export of ``hybridc discretize`` on a split of ``data_expr``,
    tokenized by the tokenizer saved with the model and split with the model's spec seed (``seed``
    overrides it), in batches of the size the run evaluated with (``batch_size`` overrides it): a run's
    test split and numbers are the ones its training table reports. ``activity`` shows each piece of work
    (loading, data, the batches); what needs no model (the expression, the tokenizer files) is checked first."""
    from ..io.activity import Activity
    from ..models.load import check_before_loading

    activity = activity if activity is not None else Activity(enabled=False)
    source = parse_data_expression(data_expr)
    directory = check_before_loading(directory, tokenizer=source.name in ("text", "classify"))
    with activity.step(f"loading the model in {directory}"):
        import torch

        from ..data import build_data
        from ..models.load import load_saved
        from ..train.loop import eval_batches, evaluate

        saved = load_saved(directory, device)
    tokenizer = saved.need_tokenizer() if source.name in ("text", "classify") else None
    with activity.step(f"preparing data: {data_expr}"):
        bundle = build_data(source, task=saved.task, tokenizer=tokenizer, seed=saved.seed if seed is None else seed,
                            base_dir=Path.cwd(), location=Location("--data", 1, 1))
    data = getattr(bundle, split)
    check_data_fits(saved, source, data_expr, data, split)
    if batch_size is None:
        batch_size = run_eval_batch_size(saved.resolved.spec) if saved.resolved is not None else 8
    with activity.counted(f"evaluating the {split} split ({len(data)} sequences)", eval_batches(data, batch_size),
                          unit="batch", units="batches") as progress:
        result = evaluate(saved.model, data, batch_size, torch.device(device), task=saved.task.kind, progress=progress)
    return {"data": data_expr, "split": split, **result}


def check_data_fits(saved, source: DataSource, data_expr: str, data, split: str) -> None:
    """A located ``SpecError`` at the ``--data`` argument to change when the split's sequences are longer
    than a running component's positions or use token ids outside the model's vocabulary (the model would
    fail midway otherwise)."""
    from .generate import position_limits, vocabulary_size

    problems = []
    limits = position_limits(saved)
    length = data.seq_len // 2 if saved.task.kind == "match" else data.seq_len  # a match reads each half alone
    if limits and length > limits[0][0]:
        limit, name = limits[0]
        key = "block" if "block" in dict(source.args) else "length"
        given = dict(source.args).get(key)
        what = f"{key}={given}" if isinstance(given, int) and source.name != "mad" else f"{source.name}(...)"
        problems.append(Diagnostic(_argument_location(data_expr, key), f"the {split} split's sequences of "
                                   f"{length} tokens ({what}) are longer than the model's {limit} positions "
                                   f"({name})", f"set {key}={limit} or less in --data"))
    vocab = vocabulary_size(saved)
    labels_are_tokens = saved.task.kind in ("causal-lm", "compress")
    top = data.max_token_id() if labels_are_tokens else (int(data.input_ids.max()) if data.input_ids.numel() else -1)
    if vocab is not None and top >= vocab:
        given = dict(source.args).get("vocab")
        what = f" (vocab={given})" if isinstance(given, int) else ""
        problems.append(Diagnostic(_argument_location(data_expr, "vocab"), f"the data uses token ids up to {top}"
                                   f"{what}, outside the model's vocabulary of {vocab} tokens",
                                   f"set vocab={vocab} or less in --data" if "vocab" in dict(source.args)
                                   else "evaluate with the tokenizer saved with the model"))
    if problems:
        raise SpecError(problems)


def _argument_location(text: str, key: str) -> Location:
    """Where ``key=`` is written in a ``--data`` expression (column of its value), else its start."""
    from ..spec import expr as E

    try:
        parsed = E.parse_expr(text)
    except E.ExprSyntaxError:
        return Location("--data", 1, 1)
    node = Scalar(Location("--data", 1, 1), text, text)
    for name, _, offset in getattr(parsed, "kwargs", ()):
        if name == key:
            return node.loc_at(offset)
    return node.loc_at(getattr(parsed, "offset", 0))

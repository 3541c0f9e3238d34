"""``classify(source, text, label, block, valid, test)``: labelled records for ``task: classify(n)``.

Records come from a local ``.jsonl`` or ``.csv`` file or ``hf:<dataset>`` (its ``train`` split),
read through ``datasets``. Each record's ``text`` is tokenized (no special tokens), truncated to its
first ``block`` tokens and right-padded with the tokenizer's pad id to the longest record; the
attention mask marks real tokens (the model pools the last real token). ``label`` must hold integers
in ``[0, n)``; anything else is a located ``SpecError``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..spec.checks import class_label
from ..spec.resolve import resolve_path
from .context import Examples, SourceContext
from .dataset import Split
from .records import Records, read_hub, read_local

CLASSIFY_SUFFIXES = (".jsonl", ".csv")


def build_classify(ctx: SourceContext) -> Examples:
    """input_ids, attention_mask: (N, T) long with T = min(block, longest text); labels: (N,) long.

    attention_mask is None when every record has T tokens."""
    tok = ctx.require_tokenizer()
    n_classes = ctx.task.num_classes
    assert n_classes is not None, "classify() data needs task classify(n)"
    text_field, label_field, block = str(ctx.arg("text")), str(ctx.arg("label")), int(ctx.arg("block"))
    records, files = _read(ctx, [text_field, label_field])
    for name, arg in ((text_field, "text"), (label_field, "label")):
        if name not in records.columns:
            raise ctx.error(f"the records of {records.origin} have no field '{name}'",
                            f"set {arg}= to one of: {', '.join(records.fields) or '(none)'}")
    texts = records.columns[text_field]
    labels = [_label(ctx, records.origin, i, v, n_classes) for i, v in enumerate(records.columns[label_field])]
    for i, value in enumerate(texts):
        if not isinstance(value, str):
            raise ctx.error(f"record {i + 1} of {records.origin} has {type(value).__name__} in '{text_field}', not text",
                            f"every record needs a string '{text_field}'")
    encoded = [ids[:block] for ids in tok.encode_batch(texts)]
    for i, ids in enumerate(encoded):
        if not ids:
            raise ctx.error(f"record {i + 1} of {records.origin} has no tokens in '{text_field}'",
                            "remove records with empty text")
    width = max((len(ids) for ids in encoded), default=0)
    input_ids = torch.full((len(encoded), width), tok.pad_id, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for i, ids in enumerate(encoded):
        input_ids[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        mask[i, : len(ids)] = 1
    padded = bool((mask == 0).any())
    split = Split(input_ids, torch.tensor(labels, dtype=torch.long), mask if padded else None)
    return Examples(split, "examples", files)


def _read(ctx: SourceContext, columns: list[str]) -> tuple[Records, tuple[Path, ...]]:
    """The records, and the local file they were read from (none for ``hf:`` data)."""
    source = str(ctx.arg("source"))
    if source.startswith("hf:"):
        return read_hub(source[3:], columns), ()
    path = resolve_path(ctx.base_dir, source)
    if not path.exists():
        raise ctx.error(f"no such data file '{source}'", f"paths are relative to the spec file ({ctx.base_dir})")
    if not path.is_file() or path.suffix.lower() not in CLASSIFY_SUFFIXES:
        raise ctx.error(f"classify() reads a .jsonl or .csv file, not '{source}'",
                        "write one record per line: {\"text\": ..., \"label\": 0}")
    return read_local(path, columns), (path,)


def _label(ctx: SourceContext, origin: str, i: int, value: Any, n: int) -> int:
    try:
        return class_label(value, n, ctx.task)
    except ValueError as err:
        what, hint = err.args
        raise ctx.error(f"record {i + 1} of {origin} {what}", hint) from None

"""``bytetext(source, text=text, label=label, length=4000, limit=null, valid=0.1, test=0.1)``: byte-level text
classification, LRA's Text task (IMDb reviews as bytes, the first 4000 of each, 2 classes).

Each text is its UTF-8 bytes, one token per byte (byte b is id b, as hybridc's ``bytes`` tokenizer numbers
them; LRA's byte encoder numbers them b + 1 to keep 0 for padding), cut to its first ``length`` bytes as LRA
does (``encode(text)[:max_length]``) and right-padded with 256 (the classifier reads the last real byte).
Texts come from the IMDb archive's folder (``aclImdb/``: ``train/`` and ``test/``, a folder of ``.txt`` files
per class, read as bytes; its test split is the test split, valid= of the training texts are held out: LRA
validated on the test split itself, which hybridc does not) or from records as ``classify()`` reads them
(a ``.jsonl``/``.csv`` file or ``hf:<dataset>``, split by valid= and test=).
"""

from __future__ import annotations

import torch

from ..spec.checks import class_label
from ..spec.data_layouts import LayoutError, text_layout
from ..spec.resolve import resolve_path
from .context import Examples, SourceContext
from .dataset import DataBundle, Split
from .records import read_hub, read_local
from .splits import bundle_or_examples, byte_rows, limited


def build_bytetext(ctx: SourceContext) -> Examples | DataBundle:
    """input_ids, attention_mask: (N, T) long, T = min(length, longest text); labels: (N,) long."""
    source, length, limit = str(ctx.arg("source")), int(ctx.arg("length")), ctx.arg("limit")
    if source.startswith("hf:"):
        return bundle_or_examples(ctx, {"all": _records(ctx, read_hub(source[3:]), length, limit)}, "texts")
    path = resolve_path(ctx.base_dir, source)
    if not path.exists():
        raise ctx.error(f"no such data file or directory '{source}'", f"paths are relative to the spec file ({ctx.base_dir})")
    try:
        layout = text_layout(path)
    except LayoutError as err:
        raise ctx.error(f"bytetext(): {err.message}", err.hint) from None
    if layout.kind == "records":
        fields = [str(ctx.arg("text")), str(ctx.arg("label"))]
        return bundle_or_examples(ctx, {"all": _records(ctx, read_local(path, fields), length, limit)}, "texts")
    n = ctx.task.num_classes or 0
    if len(layout.classes) > n:
        raise ctx.error(f"bytetext(): '{path}' has {len(layout.classes)} class folders ({', '.join(layout.classes)}), "
                        f"but the task is {ctx.task}", f"write task: classify({len(layout.classes)})")
    parts = {}
    for split, pairs in layout.labelled.items():
        pairs = limited(list(pairs), limit)
        rows = [f.read_bytes() for f, _ in pairs]
        for (f, _), row in zip(pairs, rows):
            if not row:
                raise ctx.error(f"bytetext(): the text '{f}' is empty", "remove empty files")
        ids, mask = byte_rows(rows, length)
        parts[split] = Split(ids, torch.tensor([label for _, label in pairs], dtype=torch.long), mask)
    return bundle_or_examples(ctx, parts if "test" in parts else {"all": parts["train"]}, "texts")


def _records(ctx: SourceContext, records, length: int, limit: int | None) -> Split:
    text_field, label_field = str(ctx.arg("text")), str(ctx.arg("label"))
    for name, arg in ((text_field, "text"), (label_field, "label")):
        if name not in records.columns:
            raise ctx.error(f"the records of {records.origin} have no field '{name}'",
                            f"set {arg}= to one of: {', '.join(records.fields) or '(none)'}")
    texts = limited(records.columns[text_field], limit)
    labels = []
    for i, value in enumerate(limited(records.columns[label_field], limit)):
        try:
            labels.append(class_label(value, ctx.task.num_classes or 0, ctx.task))
        except ValueError as err:
            what, hint = err.args
            raise ctx.error(f"record {i + 1} of {records.origin} {what}", hint) from None
    rows = []
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text:
            raise ctx.error(f"record {i + 1} of {records.origin} has {'no text' if text == '' else type(text).__name__} "
                            f"in '{text_field}'", f"every record needs a non-empty string '{text_field}'")
        rows.append(text.encode("utf-8"))
    ids, mask = byte_rows(rows, length)
    return Split(ids, torch.tensor(labels, dtype=torch.long), mask)

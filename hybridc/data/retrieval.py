"""``retrieval(source, length=4000, limit=null, valid=0.1, test=0.1)``: document matching for ``task: match(n)``,
LRA's Retrieval task (ACL Anthology Network: does one paper cite the other, 2 classes).

Each line of LRA's files is ``label, id1, id2, text1, text2`` (tab-separated, no quoting; a label such as
``1.0``). Both documents become their bytes (byte b is id b), each cut to its first ``length`` bytes as LRA
does and right-padded with 256 to the longest kept document, T; a pair is one row of 2T tokens, the first
document in positions 0..T-1 and the second in T..2T-1, and the model encodes the two halves separately
(``task: match(n)``). LRA's three files are train, valid and test (``*.train.tsv``, ``*.eval.tsv``,
``*.test.tsv``); one ``.tsv`` file is split by valid= and test=. Lines are read as bytes: a document is
exactly the bytes between its tabs.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..spec.data_layouts import LayoutError, retrieval_layout, tsv_pair
from ..spec.resolve import resolve_path
from .context import Examples, SourceContext
from .dataset import DataBundle, Split
from .splits import bundle_or_examples, byte_rows


def build_retrieval(ctx: SourceContext) -> Examples | DataBundle:
    """input_ids, attention_mask: (N, 2T) long (two documents side by side); labels: (N,) long."""
    path = resolve_path(ctx.base_dir, str(ctx.arg("source")))
    if not path.exists():
        raise ctx.error(f"no such data file or directory '{ctx.arg('source')}'",
                        f"paths are relative to the spec file ({ctx.base_dir})")
    length, limit = int(ctx.arg("length")), ctx.arg("limit")
    try:
        layout = retrieval_layout(path)
        pairs = {split: _read(f, ctx.task.num_classes, limit) for split, (f,) in layout.splits.items()}
    except LayoutError as err:
        raise ctx.error(f"retrieval(): {err.message}", err.hint) from None
    if "test" not in pairs and "all" not in pairs:
        raise ctx.error(f"retrieval(): '{path}' has no *.test.tsv file", "give the test pairs (LRA: new_aan_pairs.test.tsv)")
    parts = {split: _split(rows, length) for split, rows in pairs.items()}
    return bundle_or_examples(ctx, parts, "pairs")


def _read(path: Path, classes: int | None, limit: int | None) -> list[tuple[int, bytes, bytes]]:
    rows = []
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            if limit is not None and len(rows) >= limit:
                break
            if not line.strip():
                continue
            label, a, b = tsv_pair(line.decode("utf-8", errors="surrogateescape"), number, path.name, classes)
            rows.append((label, a.encode("utf-8", errors="surrogateescape"), b.encode("utf-8", errors="surrogateescape")))
    return rows


def _split(rows: list[tuple[int, bytes, bytes]], length: int) -> Split:
    """(N, 2T): [first document | second document], each right-padded to T."""
    if not rows:
        return Split(torch.zeros((0, 2), dtype=torch.long), torch.zeros(0, dtype=torch.long))
    ids, mask = byte_rows([r[1] for r in rows] + [r[2] for r in rows], length)
    n = len(rows)
    pair_ids = torch.cat([ids[:n], ids[n:]], dim=1)
    pair_mask = torch.cat([mask[:n], mask[n:]], dim=1)
    return Split(pair_ids, torch.tensor([r[0] for r in rows], dtype=torch.long), pair_mask)

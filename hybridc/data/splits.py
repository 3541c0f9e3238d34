"""Data sources whose files come split (a test split of their own, sometimes a validation split): the
bundle they make, and sequences of bytes as token ids (the LRA text sources)."""

from __future__ import annotations

import torch

from .context import Examples, SourceContext
from .dataset import DataBundle, Split
from .sampling import generator, split_indices

BYTE_PAD = 256  # the padding id after the 256 byte values (hybridc's bytes tokenizer numbers them so)


def limited(items: list, limit: int | None) -> list:
    """The first ``limit`` items (all when ``limit`` is None)."""
    return items if limit is None else items[:limit]


def bundle_or_examples(ctx: SourceContext, parts: dict[str, Split], unit: str) -> DataBundle | Examples:
    """``parts`` as the source gives them: one part ("all": split by the valid=/test= fractions, as every source
    is), or "train" and "test" (and "valid"; without it the fraction valid= of train is held out, drawn from
    (seed, source) as the other sources' splits are). An empty part is a located error."""
    for name, part in parts.items():
        if len(part) == 0:
            raise ctx.error(f"{ctx.short}: the {'data' if name == 'all' else name + ' split'} has no {unit}",
                            "give every split examples")
    if "all" in parts:
        return Examples(parts["all"], unit)
    train, test = parts["train"], parts["test"]
    valid = parts.get("valid")
    if valid is None:
        idx = split_indices(len(train), float(ctx.arg("valid")), 0.0, generator(ctx.seed, "split", ctx.source))
        train, valid = train.select(idx.train), train.select(idx.valid)
        if len(valid) == 0 or len(train) == 0:
            raise ctx.error(f"{ctx.short}: {len(parts['train'])} training {unit} cannot give a validation split "
                            f"of {ctx.arg('valid')} and still train", "use more data or another valid= fraction")
    top = max(s.max_token_id() for s in (train, valid, test))
    description = f"{ctx.short}: {len(train)} train / {len(valid)} valid / {len(test)} test {unit}"
    return DataBundle(train, valid, test, top, description)


def byte_rows(rows: list[bytes], length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, mask): (N, T) long with T = min(length, longest row): each row's first ``length`` bytes (byte b
    is id b), right-padded with ``BYTE_PAD``; the mask is 1 on the bytes."""
    kept = [row[:length] for row in rows]
    width = max((len(r) for r in kept), default=0)
    ids = torch.full((len(kept), width), BYTE_PAD, dtype=torch.long)
    mask = torch.zeros((len(kept), width), dtype=torch.long)
    for i, row in enumerate(kept):
        if row:
            ids[i, : len(row)] = torch.frombuffer(bytearray(row), dtype=torch.uint8).long()
            mask[i, : len(row)] = 1
    return ids, mask

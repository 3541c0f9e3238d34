"""``listops(length, depth, examples, valid, test)``: Long Range Arena's ListOps, for ``classify(10)``.

An example is a nested list expression over the digits 0-9 with four operators, written in prefix form as
LRA does: ``[MAX 4 3 [MIN 2 3 ] 1 0 [MED 1 5 8 9 , 2 ] ]`` (without the commas). The label is its value:

- ``MAX``, ``MIN``: the largest / smallest argument;
- ``MED``: the median (the lower middle value's floor of the mean of the two middle values, as
  ``int(numpy.median)`` gives);
- ``SM``: the sum modulo 10.

Tokens (vocabulary 18, as in LRA): 0 pad, 1-10 the digits 0-9, 11 ``[MAX``, 12 ``[MIN``, 13 ``[MED``,
14 ``[SM``, 15 ``]``, 16 begin, 17 end. Each sequence is ``begin expression end``, right-padded (the
classifier reads the last real token, the end token). Expressions are drawn as random trees under a token
budget drawn between ``length // 4`` and ``length``: an operator node has 2-``MAX_ARGS`` arguments that share
its budget, and a node below the root becomes a leaf with probability ``LEAF`` (always at depth ``depth`` or
when its budget is spent); a tree is kept when its sequence has between ``length // 4`` and ``length`` tokens
(LRA's generator also filters by length). Generation is seeded by (seed, length, depth, examples); duplicate
expressions are dropped so no expression is in two splits.
"""

from __future__ import annotations

import torch

from .context import Examples, SourceContext
from .dataset import Split
from .sampling import derive_seed

PAD, DIGIT0, BEGIN, END, CLOSE = 0, 1, 16, 17, 15
OPERATORS = {"MAX": 11, "MIN": 12, "MED": 13, "SM": 14}
VOCAB_SIZE = 18
MAX_ARGS = 10
LEAF = 0.25
MAX_TRIES = 200


def evaluate(op: str, values: list[int]) -> int:
    if op == "MAX":
        return max(values)
    if op == "MIN":
        return min(values)
    if op == "SM":
        return sum(values) % 10
    ordered = sorted(values)
    n = len(ordered)
    if n % 2:
        return ordered[n // 2]
    return int((ordered[n // 2 - 1] + ordered[n // 2]) / 2)


def expression(rng, depth: int, max_depth: int, budget: int) -> tuple[list[int], int]:
    """(tokens, value) of a random expression of at most ``budget`` tokens."""
    if depth >= max_depth or budget < 4 or (depth > 0 and rng.random() < LEAF):
        digit = int(rng.integers(10))
        return [DIGIT0 + digit], digit
    op = list(OPERATORS)[int(rng.integers(len(OPERATORS)))]
    args = int(rng.integers(2, min(MAX_ARGS, budget - 2) + 1))
    # share the budget left after the operator and its bracket among the arguments (each at least 1 token)
    cuts = sorted(int(c) for c in rng.integers(0, budget - 2 - args + 1, size=args - 1))
    shares = [b - a + 1 for a, b in zip([0, *cuts], [*cuts, budget - 2 - args])]
    tokens = [OPERATORS[op]]
    values = []
    for share in shares:
        sub, value = expression(rng, depth + 1, max_depth, share)
        tokens += sub
        values.append(value)
    return tokens + [CLOSE], evaluate(op, values)


def render(tokens: list[int]) -> str:
    """Tokens back to LRA's text form (for reading and tests)."""
    names = {v: f"[{k}" for k, v in OPERATORS.items()} | {CLOSE: "]", BEGIN: "<s>", END: "</s>"}
    return " ".join(names.get(t, str(t - DIGIT0)) for t in tokens if t != PAD)


def build_listops(ctx: SourceContext) -> Examples:
    import numpy as np

    length, depth, count = int(ctx.arg("length")), int(ctx.arg("depth")), int(ctx.arg("examples"))
    rng = np.random.default_rng(derive_seed(ctx.seed, "listops", length, depth, count))
    low = max(3, length // 4)
    seen: set[tuple[int, ...]] = set()
    rows: list[list[int]] = []
    labels: list[int] = []
    tries = 0
    while len(rows) < count:
        tries += 1
        if tries > count * MAX_TRIES:
            raise ctx.error(f"{ctx.short}: could not draw {count} distinct expressions of {low}-{length} tokens",
                            "raise length= or depth=, or lower examples=")
        tokens, value = expression(rng, 0, depth, int(rng.integers(low, length - 1)))
        if not low <= len(tokens) + 2 <= length or tuple(tokens) in seen:
            continue
        seen.add(tuple(tokens))
        rows.append([BEGIN, *tokens, END])
        labels.append(value)
    width = max(len(r) for r in rows)
    ids = torch.full((count, width), PAD, dtype=torch.long)
    mask = torch.zeros((count, width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return Examples(Split(ids, torch.tensor(labels, dtype=torch.long), mask), "expressions")

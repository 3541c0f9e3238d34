"""``recall(vocab, length, examples, valid, test)``: synthetic associative recall.

Token ids are raw (no tokenizer): keys are ``[0, vocab // 2)``, values ``[vocab // 2, vocab)``.
Each sequence is ``length // 2`` (key, value) pairs, so T = 2 * (length // 2) tokens (an odd
``length`` loses its last position):

    k_0 v_0 k_1 v_1 ... k_{P-1} v_{P-1}        with v_i = map[k_i]

- Every sequence has its own random key -> value map (``map[k]`` uniform over the values; two keys
  may share a value). Keys are drawn uniformly *with replacement*, so keys repeat.
- A value is scored only where its key already appeared earlier in the same sequence: there the
  target is fully determined by the context (the value bound to that key before). ``labels`` hold
  that value at those value positions and -100 everywhere else (keys and first occurrences are never
  scored). With the Hugging Face shift, the model's prediction at the repeated key's position is
  compared with the value that follows it.
- Every sequence has at least one scored position: a sequence whose keys are all distinct gets its
  last key replaced by a random earlier key.
- Sequences are distinct: duplicates are dropped (keeping the first) and more are drawn, so no
  sequence is in two splits. A ``(vocab, length)`` with too few distinct sequences for ``examples``
  is a located ``SpecError``.

Everything is drawn from one ``torch.Generator`` seeded from (seed, vocab, length, examples).
"""

from __future__ import annotations

import torch

from .context import Examples, SourceContext
from .dataset import IGNORE_INDEX, Split
from .sampling import generator

MAX_ROUNDS = 32  # rounds of drawing more sequences to replace duplicates


def build_recall(ctx: SourceContext) -> Examples:
    """input_ids, labels: (examples, 2 * (length // 2)) long; no attention mask."""
    vocab, length, examples = int(ctx.arg("vocab")), int(ctx.arg("length")), int(ctx.arg("examples"))
    g = generator(ctx.seed, "recall", vocab, length, examples)
    ids = torch.zeros(0, 2 * (length // 2), dtype=torch.long)
    for _ in range(MAX_ROUNDS):
        need = examples - ids.shape[0]
        if need <= 0:
            break
        ids = distinct_rows(torch.cat([ids, recall_sequences(vocab, length, max(need, 64), g)]))
    else:
        if ids.shape[0] < examples:
            raise ctx.error(
                f"{ctx.short} has too few distinct sequences for {examples} examples (found {ids.shape[0]})",
                "use a larger vocab= or length=, or fewer examples=",
            )
    ids = ids[:examples]
    return Examples(Split(ids, recall_labels(ids, vocab)), "sequences")


def recall_sequences(vocab: int, length: int, n: int, g: torch.Generator) -> torch.Tensor:
    """(n, 2 * (length // 2)) long: n sequences of (key, value) pairs (see the module docstring)."""
    n_keys, pairs = vocab // 2, length // 2
    if n_keys < 1 or vocab - n_keys < 1 or pairs < 2:
        raise ValueError(f"recall needs vocab >= 2 and length >= 4, not vocab={vocab}, length={length}")
    keys = torch.randint(0, n_keys, (n, pairs), generator=g)
    mapping = torch.randint(n_keys, vocab, (n, n_keys), generator=g)
    earlier = torch.randint(0, pairs - 1, (n,), generator=g)  # drawn for every row: same stream either way
    unscored = ~_repeated(keys, n_keys).any(dim=1)
    keys[unscored, -1] = keys[unscored, earlier[unscored]]
    values = torch.gather(mapping, 1, keys)
    return torch.stack([keys, values], dim=2).reshape(n, 2 * pairs)


def recall_labels(ids: torch.Tensor, vocab: int) -> torch.Tensor:
    """(N, T) long: the value at value positions whose key appeared earlier in the row, else -100."""
    keys, values = ids[:, 0::2], ids[:, 1::2]
    labels = torch.full_like(ids, IGNORE_INDEX)
    labels[:, 1::2] = torch.where(_repeated(keys, vocab // 2), values, torch.full_like(values, IGNORE_INDEX))
    return labels


def _repeated(keys: torch.Tensor, n_keys: int) -> torch.Tensor:
    """(N, P) bool: key i of a row already occurred at a position < i of that row."""
    n, pairs = keys.shape
    positions = torch.arange(pairs).expand(n, pairs)
    first = torch.full((n, n_keys), pairs, dtype=torch.long)
    first.scatter_reduce_(1, keys, positions, reduce="amin")
    return torch.gather(first, 1, keys) < positions


def distinct_rows(rows: torch.Tensor) -> torch.Tensor:
    """``rows`` (N, T) without repeated rows, keeping each row's first occurrence, in order."""
    if rows.shape[0] == 0:
        return rows
    _, inverse = torch.unique(rows, dim=0, return_inverse=True)
    first = torch.full((int(inverse.max()) + 1,), rows.shape[0], dtype=torch.long)
    first.scatter_reduce_(0, inverse, torch.arange(rows.shape[0]), reduce="amin")
    keep = first[inverse] == torch.arange(rows.shape[0])
    return rows[keep]

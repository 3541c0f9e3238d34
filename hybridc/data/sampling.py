"""Seeds, train/valid/test splits and batch order: pure functions of their arguments.

Nothing here keeps state between calls. A run that resumes at step k asks ``batch_indices`` for batch
k and gets exactly the batch it would have seen, whatever happened before.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch

_SEED_BITS = 63  # torch.Generator.manual_seed takes a 64-bit value; stay positive


def derive_seed(seed: int, *parts: object) -> int:
    """A 63-bit seed that depends only on ``seed`` and ``parts`` (their ``str``), never on the process.

    Uses SHA-256 rather than ``hash()``, which Python randomises per process for strings.
    """
    text = "\x1f".join([str(int(seed)), *(str(p) for p in parts)])
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> (64 - _SEED_BITS)


def generator(seed: int, *parts: object) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``derive_seed(seed, *parts)``."""
    g = torch.Generator(device="cpu")
    g.manual_seed(derive_seed(seed, *parts))
    return g


@dataclass(frozen=True)
class SplitIndices:
    """Indices into a list of examples, one disjoint sorted (k,) long tensor per split."""

    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor


def split_sizes(n: int, valid: float, test: float) -> tuple[int, int, int]:
    """(train, valid, test) sizes for n examples.

    Each held-out split gets ``round(n * fraction)`` examples, at least 1 when its fraction is > 0 and
    n >= 3; train keeps at least one example whenever n >= 1.
    """
    if n < 0 or not (0.0 <= valid < 1.0 and 0.0 <= test < 1.0):
        raise ValueError(f"bad split: n={n}, valid={valid}, test={test}")

    def held_out(fraction: float) -> int:
        k = int(round(n * fraction))
        return max(k, 1) if fraction > 0 and n >= 3 else k

    n_valid, n_test = held_out(valid), held_out(test)
    while n > 0 and n_valid + n_test > n - 1:  # keep a training example: shrink the larger split
        if n_valid >= n_test and n_valid > 0:
            n_valid -= 1
        else:
            n_test -= 1
    return n - n_valid - n_test, n_valid, n_test


def split_indices(n: int, valid: float, test: float, g: torch.Generator) -> SplitIndices:
    """Shuffle ``range(n)`` with ``g`` and cut it into test, valid and train (in that order).

    The three index sets partition ``range(n)``; each is returned sorted so that examples keep their
    original order inside a split.
    """
    n_train, n_valid, n_test = split_sizes(n, valid, test)
    perm = torch.randperm(n, generator=g)
    test_idx = perm[:n_test]
    valid_idx = perm[n_test:n_test + n_valid]
    train_idx = perm[n_test + n_valid:]
    return SplitIndices(train_idx.sort().values, valid_idx.sort().values, test_idx.sort().values)


def batch_indices(n: int, batch_size: int, step: int, *, seed: int, stream: str) -> torch.Tensor:
    """The (batch_size,) long indices of batch ``step`` (0-based) of an epoch-shuffled stream over ``range(n)``.

    The stream is the concatenation of epochs 0, 1, 2, ...; epoch e is ``randperm(n)`` drawn from a
    generator seeded by (seed, stream, e). Batch ``step`` is positions ``[step * batch_size,
    (step + 1) * batch_size)`` of that stream, so batches wrap across epoch boundaries, each index
    appears exactly once per epoch, and ``batch_size > n`` repeats indices. A pure function: no iterator
    state, so a resumed run replays the same batches.
    """
    if n < 1:
        raise ValueError(f"cannot draw batches from {n} examples")
    if batch_size < 1 or step < 0:
        raise ValueError(f"bad batch request: batch_size={batch_size}, step={step}")
    start = step * batch_size
    stop = start + batch_size
    first, last = start // n, (stop - 1) // n
    parts = []
    for epoch in range(first, last + 1):
        perm = torch.randperm(n, generator=generator(seed, "batches", stream, epoch))
        lo = max(start - epoch * n, 0)
        hi = min(stop - epoch * n, n)
        parts.append(perm[lo:hi])
    return torch.cat(parts)


def search_indices(n: int, fraction: float, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(weights, search): a random partition of ``n`` training examples, ``round(n * fraction)`` (at least 1
    when the fraction is > 0) held out for the alpha steps of an alternating search; both sorted (k,) long.
    Raises ValueError when either part would be empty."""
    k = max(int(round(n * fraction)), 1) if fraction > 0 else 0
    if k == 0 or k >= n:
        raise ValueError(f"{n} training example{'s' * (n != 1)} cannot give a search split of {fraction:g} and "
                         "still train the weights")
    order = torch.randperm(n, generator=g)
    return order[k:].sort().values, order[:k].sort().values

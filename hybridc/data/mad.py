"""The six MAD proxy tasks (Poli et al. 2024, "Mechanistic Design and Scaling of Hybrid Architectures"),
as seeded, pure generators with the MAD benchmark's semantics (multi-query recall, as the benchmark uses).

Every generator returns one example as ``(sequence, train_labels, test_labels)`` in the Hugging Face
layout hybridc trains with: labels aligned with the sequence, -100 where nothing is scored, the model at
position t predicting ``labels[t + 1]`` (compression, an auto-encoding task, scores ``labels[t]`` at t).

- **in-context recall**: keys ``[0, K)``, values ``[K, 2K)`` with 2K = vocab - noise tokens; a random
  key->value map per sequence; ``length/2`` (key, value) pairs, the last one a probe of a key seen before.
  Train: next token everywhere. Test: the value after every key seen before in the same sequence.
- **noisy in-context recall**: as recall, with a pair slot replaced by two noise tokens (their own
  vocabulary slice, the top ``noise_vocab`` ids) with probability ``noise``; noise is never scored at test.
- **fuzzy in-context recall**: keys and values are motifs of 1..``motif`` tokens (test keys always have
  the largest size); the probe pair is inserted at a random place and repeated at the end; sequences are
  left-padded with the pad token vocab-1. Test scores the values of keys seen before.
- **selective copying**: ``copy`` content tokens from ``[0, vocab-2)`` scattered among blanks (vocab-2),
  then the copy token (vocab-1) and ``copy`` blanks; the last ``copy`` positions score the content tokens
  in order (train and test alike).
- **compression**: ``length-1`` random tokens and a compression token (vocab-1); the model must rebuild
  every position from the last position's state (the ``compress`` task's read-out); all positions scored.
- **memorization**: a fixed key->value map (from the seed, shared by every split); sequences of
  ``[key, insert token]`` pairs score the value at each insert token.

Defects of the reference generators that are *not* reproduced: compression's noise mask is applied (the
reference drops it), selective copying draws blank positions from the seeded generator (the reference uses
numpy's global RNG), and test data is never used for early stopping or model selection (a separate
validation split is generated).
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import permutations
from typing import Any

import numpy as np
import torch

from ..spec.mad_presets import settings
from .context import SourceContext
from .dataset import IGNORE_INDEX, DataBundle, Split
from .sampling import derive_seed

Example = tuple[list[int], list[int], list[int]]  # sequence, train labels, test labels


def _rng(seed: int, *parts: Any) -> np.random.Generator:
    return np.random.default_rng(derive_seed(seed, *parts))


# ---- recall family ------------------------------------------------------------------------------
def in_context_recall(rng: np.random.Generator, vocab: int, length: int, noise: float = 0.0,
                      noise_vocab: int = 0) -> Example:
    """Multi-query (noisy) in-context recall: ``length`` tokens (``length/2 - 1`` pairs and a probe pair)."""
    if length % 2 or length < 4:
        raise ValueError("in-context recall needs an even length >= 4")
    plain = vocab - noise_vocab
    keys = np.arange(plain // 2)
    values = np.arange(plain // 2, plain)
    noise_tokens = np.arange(plain, vocab)
    pairs = length // 2 - 1
    kv: dict[int, int] = {}
    seen: dict[int, int] = {}
    seq: list[int] = []
    test: list[int] = []
    keep = int(rng.integers(pairs))  # one slot is never noise: at least one key is presented
    for i in range(pairs):
        if noise > 0 and i != keep and rng.random() < noise:
            seq += [int(t) for t in rng.choice(noise_tokens, size=2)]
            test += [IGNORE_INDEX, IGNORE_INDEX]
            continue
        k = int(rng.choice(keys))
        v = kv.setdefault(k, int(rng.choice(values)))
        seq += [k, v]
        test += [IGNORE_INDEX, v if k in seen else IGNORE_INDEX]
        seen[k] = v
    probe = int(rng.choice(list(seen)))  # the final probe: a key presented before, and its value
    seq += [probe, seen[probe]]
    test += [IGNORE_INDEX, seen[probe]]
    return seq, list(seq), test


def _motifs(vocab_range: np.ndarray, size: int) -> list[tuple[int, ...]]:
    return [tuple(int(t) for t in m) for m in permutations(vocab_range.tolist(), size)]


def fuzzy_in_context_recall(rng: np.random.Generator, vocab: int, length: int, motif: int = 3, train: bool = True,
                            noise: float = 0.0, noise_vocab: int = 0) -> Example:
    """Multi-query fuzzy recall with key/value motifs of 1..motif tokens: length + 1 tokens."""
    pad = vocab - 1
    plain = vocab - 1 - noise_vocab
    key_vocab, value_vocab = np.arange(plain // 2), np.arange(plain // 2, plain)
    key_sizes = list(range(1, motif + 1)) if train else [motif]
    value_sizes = list(range(1, motif + 1))
    keys = {s: _motifs(key_vocab, s) for s in key_sizes}
    values = {s: _motifs(value_vocab, s) for s in value_sizes}

    def draw(table: dict[int, list], size: int) -> tuple[int, ...]:
        options = table[size]
        return options[int(rng.integers(len(options)))]

    k_probe = draw(keys, int(rng.choice(key_sizes)))
    v_probe = draw(values, int(rng.choice(value_sizes)))
    probe_size = len(k_probe) + len(v_probe)
    probe_at = int(rng.integers(max(1, length - 2 * probe_size)))
    seq: list[int] = []
    test: list[int] = []
    kv: dict[tuple, tuple] = {}
    seen: set[tuple] = set()
    placed = False
    while len(seq) < length - probe_size - 2 * motif:
        k_size, v_size = int(rng.choice(key_sizes)), int(rng.choice(value_sizes))
        if len(seq) >= probe_at and not placed:
            seq += list(k_probe) + list(v_probe)
            test += [IGNORE_INDEX] * probe_size
            kv[k_probe], placed = v_probe, True
            seen.add(k_probe)
            continue
        if noise > 0 and rng.random() < noise:
            seq += [int(t) for t in rng.choice(np.arange(plain, plain + noise_vocab), size=k_size + v_size)]
            test += [IGNORE_INDEX] * (k_size + v_size)
            continue
        k = draw(keys, k_size)
        if k == k_probe:
            v, placed = v_probe, True
        else:
            v = kv.setdefault(k, draw(values, v_size))
        seq += list(k) + list(v)
        test += [IGNORE_INDEX] * len(k) + (list(v) if k in seen else [IGNORE_INDEX] * len(v))
        seen.add(k)
    seq += list(k_probe) + list(v_probe)
    test += [IGNORE_INDEX] * len(k_probe) + list(v_probe)
    missing = length + 1 - len(seq)
    if missing > 0:  # left-pad to length + 1 tokens
        seq = [pad] * missing + seq
        test = [IGNORE_INDEX] * missing + test
    seq, test = seq[-(length + 1):], test[-(length + 1):]
    return seq, list(seq), test


# ---- copying, compression, memorization --------------------------------------------------------
def selective_copying(rng: np.random.Generator, vocab: int, length: int, copy: int) -> Example:
    """``copy`` content tokens among blanks, the copy token, ``copy`` blanks: length + 1 tokens."""
    blank, copy_token = vocab - 2, vocab - 1
    if length <= 2 * copy + 1:
        raise ValueError(f"selective copying needs length > 2 * copy + 1 ({length} <= {2 * copy + 1})")
    content = [int(t) for t in rng.integers(0, vocab - 2, size=copy)]
    blanks = length - 2 * copy - 1
    slots = sorted(int(i) for i in rng.integers(0, copy, size=blanks))  # insert positions, seeded
    body = list(content)
    for offset, i in enumerate(slots):
        body.insert(i + offset, blank)
    seq = body + [copy_token] + [blank] * copy
    targets = [IGNORE_INDEX] * (len(body) + 1) + content  # output at position t: targets[t]
    seq = seq + [blank]  # one more position: its label is the last target
    labels = [IGNORE_INDEX] + targets
    return seq, labels, labels


def compression(rng: np.random.Generator, vocab: int, length: int, noise: float = 0.0, noise_vocab: int = 0) -> Example:
    """``length - 1`` tokens and the compression token; labels rebuild every (non-noise) position."""
    token = vocab - 1
    plain = vocab - 1 - noise_vocab
    seq = [int(t) for t in rng.integers(0, plain, size=length - 1)] + [token]
    labels = list(seq)
    if noise > 0:
        for i in range(length - 1):
            if rng.random() < noise:
                seq[i] = int(rng.integers(plain, plain + noise_vocab))
                labels[i] = IGNORE_INDEX
    return seq, labels, labels


def memorization_map(seed: int, vocab: int) -> dict[int, int]:
    """The fixed key -> value facts: keys ``[0, (vocab-1)//2)``, values above them."""
    rng = _rng(seed, "memorization-facts", vocab)
    plain = vocab - 1
    keys = np.arange(plain // 2)
    values = np.arange(plain // 2, plain)
    rng.shuffle(keys)
    rng.shuffle(values)
    return {int(k): int(v) for k, v in zip(keys, values)}


def memorization(rng: np.random.Generator, vocab: int, length: int, facts: dict[int, int]) -> Example:
    """``length/2`` pairs [key, insert token]; the value is scored at each insert token."""
    insert = vocab - 1
    keys = list(facts)
    seq: list[int] = []
    targets: list[int] = []
    for _ in range(length // 2):
        k = keys[int(rng.integers(len(keys)))]
        seq += [k, insert]
        targets += [IGNORE_INDEX, facts[k]]
    seq = seq + [insert]
    labels = [IGNORE_INDEX] + targets
    return seq, labels, labels


# ---- datasets -----------------------------------------------------------------------------------
def task_settings(ctx: SourceContext) -> tuple[str, dict[str, Any]]:
    task = str(ctx.arg("task"))
    preset = str(ctx.arg("preset"))
    overrides = {k: ctx.arg(k) for k in ("vocab", "length", "examples", "noise", "copy", "motif")}
    try:
        return task, settings(task, preset, overrides)
    except KeyError:
        raise ctx.error(f"unknown preset '{preset}' for {task}", "use cpu, mad or a grid point such as "
                        "mad-length256 (hybridc mad --list-presets)") from None


def _generator(task: str, s: dict[str, Any], seed: int) -> Callable[[np.random.Generator, bool], Example]:
    v, n = s["vocab"], s["length"]
    if task in ("in-context-recall", "noisy-in-context-recall"):
        return lambda rng, train: in_context_recall(rng, v, n, s["noise"], s["noise_vocab"])
    if task == "fuzzy-in-context-recall":
        return lambda rng, train: fuzzy_in_context_recall(rng, v, n, s["motif"], train, s["noise"], s["noise_vocab"])
    if task == "selective-copying":
        return lambda rng, train: selective_copying(rng, v, n, s["copy"])
    if task == "compression":
        return lambda rng, train: compression(rng, v, n, s["noise"], s["noise_vocab"])
    facts = memorization_map(seed, v)
    return lambda rng, train: memorization(rng, v, n, facts)


def generate(task: str, s: dict[str, Any], seed: int, split: str, count: int,
             exclude: set[bytes] | None = None) -> Split:
    """``count`` examples of one split, each from its own seeded stream; rows in ``exclude`` are redrawn."""
    make = _generator(task, s, seed)
    train = split == "train"
    rows, labels = [], []
    seen = set(exclude or ())
    index = 0
    while len(rows) < count:
        if index > 20 * count + 100:
            raise ValueError(f"{task}: too few distinct sequences for {count} {split} examples")
        rng = _rng(seed, "mad", task, split, index)
        index += 1
        seq, train_labels, test_labels = make(rng, train)
        key = np.asarray(seq, dtype=np.int64).tobytes()
        if key in seen and task != "memorization":
            continue
        seen.add(key)
        rows.append(seq)
        labels.append(train_labels if train else test_labels)
    ids = torch.tensor(rows, dtype=torch.long)
    return Split(ids, torch.tensor(labels, dtype=torch.long))


def build_mad(ctx: SourceContext) -> DataBundle:
    """train (train-style targets), valid and test (scored positions only), disjoint by construction."""
    task, s = task_settings(ctx)
    try:
        train = generate(task, s, ctx.seed, "train", s["examples"])
        seen = {row.numpy().tobytes() for row in train.input_ids}
        valid = generate(task, s, ctx.seed, "valid", s["test"], exclude=seen)
        seen |= {row.numpy().tobytes() for row in valid.input_ids}
        test = generate(task, s, ctx.seed, "test", s["test"], exclude=seen)
    except ValueError as err:
        raise ctx.error(f"{ctx.short}: {err}", "change the preset or the overrides") from None
    max_id = max(split.max_token_id() for split in (train, valid, test))
    description = f"{ctx.short}: {len(train)} train / {len(valid)} valid / {len(test)} test sequences"
    return DataBundle(train, valid, test, max_id, description)

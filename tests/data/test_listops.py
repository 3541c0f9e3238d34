"""ListOps: every label is the value of its expression (checked by an independent evaluator), lengths and
depths stay in their limits, generation is deterministic and the vocabulary is LRA's 18 tokens."""

from __future__ import annotations

import statistics

import torch

from hybridc.data import build_data
from hybridc.data.listops import BEGIN, END, PAD, VOCAB_SIZE, render
from hybridc.errors import Location
from hybridc.spec.model import DataSource, Task


def solve(text: str) -> tuple[int, int]:
    """(value, depth) of an LRA-style ListOps string, by a small recursive parser."""
    tokens = text.split()
    position = 0

    def node() -> tuple[int, int]:
        nonlocal position
        token = tokens[position]
        position += 1
        if token.isdigit():
            return int(token), 0
        op = token[1:]
        values, depth = [], 0
        while tokens[position] != "]":
            value, d = node()
            values.append(value)
            depth = max(depth, d)
        position += 1
        if op == "MAX":
            result = max(values)
        elif op == "MIN":
            result = min(values)
        elif op == "SM":
            result = sum(values) % 10
        else:
            result = int(statistics.median(values))
        return result, depth + 1

    value, depth = node()
    assert position == len(tokens)
    return value, depth


def bundle(seed=0, **args):
    source = DataSource("listops", tuple(args.items()))
    return build_data(source, task=Task("classify", 10), tokenizer=None, seed=seed, base_dir=".",
                      location=Location("s", 1, 1))


def test_labels_lengths_depths_and_tokens():
    b = bundle(length=96, depth=5, examples=300)
    for split in (b.train, b.valid, b.test):
        for ids, mask, label in zip(split.input_ids, split.attention_mask, split.labels):
            real = ids[mask.bool()].tolist()
            assert real[0] == BEGIN and real[-1] == END and PAD not in real
            assert 96 // 4 <= len(real) <= 96
            value, depth = solve(render(real[1:-1]))
            assert value == label.item() and depth <= 5
    assert b.max_token_id < VOCAB_SIZE
    labels = torch.cat([b.train.labels, b.valid.labels, b.test.labels])
    assert len(labels.unique()) == 10  # every class occurs


def test_deterministic_and_disjoint():
    a, b, c = bundle(length=64, examples=200), bundle(length=64, examples=200), bundle(seed=1, length=64, examples=200)
    assert torch.equal(a.train.input_ids, b.train.input_ids) and not torch.equal(a.train.input_ids, c.train.input_ids)
    rows = {name: {tuple(r.tolist()) for r in getattr(a, name).input_ids} for name in ("train", "valid", "test")}
    assert not rows["train"] & rows["test"] and not rows["train"] & rows["valid"]

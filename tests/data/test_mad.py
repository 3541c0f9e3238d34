"""The MAD generators: each task's defining property on many seeds, determinism, disjoint splits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridc.data import build_data
from hybridc.data.dataset import IGNORE_INDEX
from hybridc.data.mad import (compression, fuzzy_in_context_recall, in_context_recall, memorization, memorization_map,
                              selective_copying)
from hybridc.errors import Location, SpecError
from hybridc.spec.mad_presets import TASKS, grid, presets
from hybridc.spec.model import DataSource, Task

SEEDS = st.integers(0, 2**32 - 1)


def rng(seed):
    return np.random.default_rng(seed)


@settings(max_examples=200, deadline=None)
@given(seed=SEEDS, vocab=st.sampled_from([8, 16, 32]), length=st.sampled_from([8, 16, 32]))
def test_recall_scores_the_value_bound_to_the_probed_key(seed, vocab, length):
    seq, train, test = in_context_recall(rng(seed), vocab, length)
    assert len(seq) == length and train == seq
    keys, values = seq[0::2], seq[1::2]
    assert all(0 <= k < vocab // 2 for k in keys) and all(vocab // 2 <= v < vocab for v in values)
    scored = [t for t, label in enumerate(test) if label != IGNORE_INDEX]
    assert scored and scored[-1] == length - 1  # the final probe is always scored
    for t in scored:
        key = seq[t - 1]
        earlier = [i for i in range(0, t - 1, 2) if seq[i] == key]
        assert earlier, "scored a key not seen before"
        assert test[t] == seq[earlier[0] + 1] == seq[t]  # the value bound to it earlier


@settings(max_examples=200, deadline=None)
@given(seed=SEEDS, noise=st.floats(0.1, 0.9))
def test_noisy_recall_never_scores_noise(seed, noise):
    seq, _, test = in_context_recall(rng(seed), 32, 32, noise=noise, noise_vocab=16)
    for t, token in enumerate(seq):
        if token >= 16:
            assert test[t] == IGNORE_INDEX
    pairs = [(seq[i], seq[i + 1]) for i in range(0, len(seq), 2)]
    assert any(k < 8 for k, _ in pairs)


@settings(max_examples=100, deadline=None)
@given(seed=SEEDS, train=st.booleans())
def test_fuzzy_recall_scores_values_of_motifs_seen_before(seed, train):
    vocab, length, motif = 16, 48, 2
    seq, train_labels, test = fuzzy_in_context_recall(rng(seed), vocab, length, motif, train)
    assert len(seq) == length + 1 and train_labels == seq
    scored = [t for t, label in enumerate(test) if label != IGNORE_INDEX]
    assert scored and scored[-1] == length  # the repeated probe's value closes the sequence
    assert all(test[t] == seq[t] for t in scored)
    assert all((vocab - 1) // 2 <= seq[t] < vocab - 1 for t in scored)  # values only
    if not train:  # test keys always have the largest motif size
        body = [t for t in seq if t != vocab - 1]
        assert len(body) >= 2 * motif


@settings(max_examples=200, deadline=None)
@given(seed=SEEDS, copy=st.integers(1, 8), extra=st.integers(0, 20))
def test_selective_copying_scores_the_content_in_order(seed, copy, extra):
    vocab = 16
    length = 2 * copy + 2 + extra
    seq, labels, test = selective_copying(rng(seed), vocab, length, copy)
    assert labels == test and len(seq) == length + 1
    copy_at = seq.index(vocab - 1)
    content = [t for t in seq[:copy_at] if t != vocab - 2]
    assert len(content) == copy
    scored = [labels[t] for t in range(len(labels)) if labels[t] != IGNORE_INDEX]
    assert scored == content  # the last `copy` targets are the content tokens in order
    assert [t for t, label in enumerate(labels) if label != IGNORE_INDEX] == list(range(length + 1 - copy, length + 1))


@settings(max_examples=100, deadline=None)
@given(seed=SEEDS, noise=st.sampled_from([0.0, 0.3]))
def test_compression_rebuilds_every_clean_position(seed, noise):
    seq, labels, _ = compression(rng(seed), 16 + (4 if noise else 0), 12, noise=noise, noise_vocab=4 if noise else 0)
    assert seq[-1] == (19 if noise else 15) and labels[-1] == seq[-1]
    for token, label in zip(seq, labels):
        assert label == token or (label == IGNORE_INDEX and noise and token >= 15)


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 100), draws=st.integers(0, 2**32 - 1))
def test_memorization_facts_are_fixed_across_examples(seed, draws):
    facts = memorization_map(seed, 32)
    assert facts == memorization_map(seed, 32)
    for i in range(5):
        seq, labels, _ = memorization(rng(draws + i), 32, 16, facts)
        for t in range(1, len(seq) - 1, 2):
            assert seq[t] == 31 and labels[t + 1] == facts[seq[t - 1]]


def bundle(task, seed=0, **args):
    source = DataSource("mad", (("task", task), *args.items()))
    kind = "compress" if task == "compression" else "causal-lm"
    return build_data(source, task=Task(kind), tokenizer=None, seed=seed, base_dir=".", location=Location("s", 1, 1))


@pytest.mark.parametrize("task", TASKS)
def test_cpu_preset_bundles_are_deterministic_and_disjoint(task):
    a, b = bundle(task, examples=64), bundle(task, examples=64)
    c = bundle(task, seed=1, examples=64)
    for split in ("train", "valid", "test"):
        assert torch.equal(getattr(a, split).input_ids, getattr(b, split).input_ids)
        assert torch.equal(getattr(a, split).labels, getattr(b, split).labels)
    assert not torch.equal(a.train.input_ids, c.train.input_ids)
    rows = {name: {tuple(r.tolist()) for r in getattr(a, name).input_ids} for name in ("train", "valid", "test")}
    if task != "memorization":
        assert not rows["train"] & rows["test"] and not rows["valid"] & rows["test"] and not rows["train"] & rows["valid"]
    assert len(a.train) == 64 and len(a.test) == presets(task)["cpu"]["test"]


def test_recall_train_targets_are_next_tokens_and_test_targets_only_values():
    b = bundle("in-context-recall", examples=32)
    assert torch.equal(b.train.labels, b.train.input_ids)
    assert (b.test.labels != IGNORE_INDEX).float().mean() < 0.5


def test_the_grid_has_the_benchmarks_66_settings():
    assert sum(len(grid(t)) for t in TASKS) == 66
    assert presets("selective-copying")["mad-copy32"]["copy"] == 32
    assert presets("noisy-in-context-recall")["mad-noise0.4"]["noise"] == 0.4


def test_unknown_preset_is_located():
    with pytest.raises(SpecError) as info:
        bundle("compression", preset="mad-length7")
    assert "unknown preset 'mad-length7'" in info.value.diagnostics[0].message

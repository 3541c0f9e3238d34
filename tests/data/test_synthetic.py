"""recall(...) data (hybridc/data/synthetic.py): targets determined by the context, ranges, splits."""

from __future__ import annotations

import pytest
import torch

from hybridc.data import IGNORE_INDEX
from hybridc.data.synthetic import distinct_rows, recall_labels
from hybridc.errors import SpecError


def check_recall(ids: torch.Tensor, labels: torch.Tensor, vocab: int) -> None:
    """Every row: keys at even positions in [0, vocab/2), values at odd positions in [vocab/2, vocab),
    each key bound to one value within the row; a value is scored iff its key occurred before, and the
    target is the value bound to that key earlier; at least one scored position."""
    half = vocab // 2
    assert ids.shape == labels.shape and ids.shape[1] % 2 == 0
    keys, values = ids[:, 0::2], ids[:, 1::2]
    assert int(keys.min()) >= 0 and int(keys.max()) < half
    assert int(values.min()) >= half and int(values.max()) < vocab
    assert (labels[:, 0::2] == IGNORE_INDEX).all()
    for row_ids, row_labels in zip(ids.tolist(), labels.tolist()):
        bound: dict[int, int] = {}
        scored = 0
        for p in range(0, len(row_ids), 2):
            key, value, label = row_ids[p], row_ids[p + 1], row_labels[p + 1]
            if key in bound:
                assert value == bound[key]  # one value per key in a sequence
                assert label == bound[key]  # the target is the value bound earlier
                scored += 1
            else:
                assert label == IGNORE_INDEX  # first occurrence: not determined, not scored
                bound[key] = value
        assert scored >= 1


@pytest.mark.parametrize("seed", range(12))
def test_recall_targets_are_determined_by_the_context(build, seed: int) -> None:
    vocab, length = [(16, 32), (4, 16), (64, 8), (200, 6), (9, 13), (1000, 4)][seed % 6]
    bundle = build("recall", seed=seed, vocab=vocab, length=length, examples=64, valid=0.1, test=0.1)
    for split in (bundle.train, bundle.valid, bundle.test):
        assert split.input_ids.shape[1] == 2 * (length // 2)
        assert split.attention_mask is None
        check_recall(split.input_ids, split.labels, vocab)
    assert bundle.max_token_id < vocab


def test_large_vocab_short_sequences_force_a_repeat(build) -> None:
    # 2 pairs over 500 keys: a repeat is rare by chance, so it is forced (the last key repeats the first)
    bundle = build("recall", vocab=1000, length=4, examples=200, valid=0.0, test=0.0)
    ids = bundle.train.input_ids
    assert torch.equal(ids[:, 0], ids[:, 2]) and torch.equal(ids[:, 1], ids[:, 3])
    assert torch.equal(bundle.train.labels[:, 3], ids[:, 3])


def test_recall_splits_are_disjoint_and_deterministic(build) -> None:
    a = build("recall", seed=3, vocab=8, length=8, examples=300, valid=0.2, test=0.2)
    b = build("recall", seed=3, vocab=8, length=8, examples=300, valid=0.2, test=0.2)
    c = build("recall", seed=4, vocab=8, length=8, examples=300, valid=0.2, test=0.2)
    sets = [{tuple(r) for r in s.input_ids.tolist()} for s in (a.train, a.valid, a.test)]
    assert sum(len(s) for s in sets) == 300  # distinct sequences, none in two splits
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    for name in ("train", "valid", "test"):
        assert torch.equal(getattr(a, name).input_ids, getattr(b, name).input_ids)
        assert torch.equal(getattr(a, name).labels, getattr(b, name).labels)
    assert not torch.equal(a.train.input_ids, c.train.input_ids)
    assert a.description == "recall(vocab=8, length=8, examples=300, valid=0.2, test=0.2): 180 train / 60 valid / 60 test sequences"


def test_too_few_distinct_sequences_is_located(build, loc) -> None:
    # vocab 4, length 4: (k, v, k, v) with 2 keys and 2 values: only 4 distinct sequences
    with pytest.raises(SpecError) as info:
        build("recall", vocab=4, length=4, examples=8)
    (d,) = info.value.diagnostics
    assert d.location == loc and "too few distinct sequences" in d.message


def test_distinct_rows_keeps_first_occurrences_in_order() -> None:
    rows = torch.tensor([[3, 1], [0, 0], [3, 1], [2, 2], [0, 0], [1, 9]])
    assert distinct_rows(rows).tolist() == [[3, 1], [0, 0], [2, 2], [1, 9]]


def test_recall_labels_by_hand() -> None:
    ids = torch.tensor([[0, 4, 1, 5, 0, 4, 1, 5, 2, 6]])
    assert recall_labels(ids, 8).tolist() == [[-100, -100, -100, -100, -100, 4, -100, 5, -100, -100]]

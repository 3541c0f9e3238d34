"""build_data (hybridc/data/bundle.py) and Split/DataBundle (hybridc/data/dataset.py)."""

from __future__ import annotations


import pytest
import torch

from hybridc.data import BUILDERS, Split, canonical_source, short_form
from hybridc.spec.model import DataSource, Task
from hybridc.spec.signatures import DATA_SOURCES


def test_every_data_source_has_a_builder() -> None:
    assert set(BUILDERS) == set(DATA_SOURCES)


def test_task_mismatch_is_a_bug(build) -> None:
    with pytest.raises(AssertionError):
        build("recall", task=Task("classify", 2))


def test_canonical_source_fills_defaults_in_signature_order() -> None:
    src = canonical_source(DataSource("recall", (("length", 8), ("vocab", 6))))
    assert src.args == (("vocab", 6), ("length", 8), ("examples", 2048), ("valid", 0.05), ("test", 0.05))
    assert short_form(src) == "recall(vocab=6, length=8)"
    assert canonical_source(DataSource("recall", (("valid", 0), ("test", 1)))) == \
        canonical_source(DataSource("recall", (("valid", 0.0), ("test", 1.0))))  # same text, same seeds
    assert short_form(canonical_source(DataSource("text", (("source", "a b.txt"), ("block", 512))))).startswith("text(")


def test_split_checks_shapes_and_batches() -> None:
    ids = torch.arange(12).view(3, 4)
    split = Split(ids, ids.clone())
    assert len(split) == 3 and split.seq_len == 4
    assert split.batch(torch.tensor([2, 2]))["input_ids"].tolist() == [[8, 9, 10, 11]] * 2
    assert "attention_mask" not in split.batch(torch.tensor([0]))
    with pytest.raises(ValueError):
        Split(ids, torch.zeros(3, 5, dtype=torch.long))
    with pytest.raises(ValueError):
        Split(ids.float().long()[:, :2], ids)
    with pytest.raises(ValueError):
        Split(ids, ids, torch.ones(3, 4))  # float mask

"""``train.data_seed``: runs of several seeds on one test split (the seed still orders batches, draws the
search split and initialises)."""

from __future__ import annotations

import torch

from hybridc.spec import load_spec
from hybridc.train.run import Run, TrainOptions
from tests.specs import write_spec
from tests.train.helpers import spec_text

TEXT = spec_text("- {name: search, search: 'darts(alternate=true)', data: 'recall(vocab=16, length=16, examples=256)', "
                 "steps: 2}")


def bundle(tmp_path, seed: int, data_seed: int | None):
    extra = f"  data_seed: {data_seed}\n" if data_seed is not None else ""
    text = TEXT.replace("  seed: 3\n", f"  seed: {seed}\n{extra}")
    rs = load_spec(write_spec(tmp_path, text, f"s{seed}-{data_seed}.yaml"))
    assert rs.spec.train.seed == seed and rs.spec.train.data_seed == data_seed
    (data,) = Run(rs, TrainOptions(out_dir=tmp_path / "unused", quiet=True), say=lambda _: None).load_data().values()
    return data


def same(a, b) -> bool:
    return a.input_ids.shape == b.input_ids.shape and torch.equal(a.input_ids, b.input_ids)


def test_one_data_seed_gives_every_seed_the_same_splits(tmp_path):
    zero, one = bundle(tmp_path, 0, 7), bundle(tmp_path, 1, 7)
    assert same(zero.test, one.test) and same(zero.valid, one.valid) and same(zero.train, one.train)


def test_without_it_the_seed_moves_the_test_split(tmp_path):
    zero, one = bundle(tmp_path, 0, None), bundle(tmp_path, 1, None)
    assert not same(zero.test, one.test)


def test_data_seed_equal_to_the_seed_changes_nothing(tmp_path):
    assert same(bundle(tmp_path, 4, 4).test, bundle(tmp_path, 4, None).test)

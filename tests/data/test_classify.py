"""classify(...) data (hybridc/data/classify.py): records, truncation, padding, labels."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hybridc.data import ByteTokenizer, load_hf_tokenizer
from hybridc.errors import SpecError
from hybridc.spec.model import Task

BYTES = ByteTokenizer()
TEXTS = ["a", "bbb", "cc", "dddddd", "e", "ffff"]


def all_examples(build, path: Path, n: int = 3, **kw):
    return build("classify", task=Task("classify", n), tokenizer=BYTES, source=str(path), valid=0.0, test=0.0, **kw)


def test_jsonl_padding_and_mask(build, jsonl, tmp_path: Path) -> None:
    path = jsonl(tmp_path / "d.jsonl", [{"text": t, "label": i % 3} for i, t in enumerate(TEXTS)])
    split = all_examples(build, path, block=4).train
    lengths = [min(len(t), 4) for t in TEXTS]
    assert split.input_ids.shape == (6, 4) and split.labels.tolist() == [0, 1, 2, 0, 1, 2]
    assert split.attention_mask is not None
    assert split.attention_mask.sum(dim=1).tolist() == lengths
    for row, mask, text, n in zip(split.input_ids.tolist(), split.attention_mask.tolist(), TEXTS, lengths):
        assert row[:n] == list(text.encode())[:n]  # truncated to block
        assert row[n:] == [BYTES.pad_id] * (4 - n) and mask == [1] * n + [0] * (4 - n)
    batch = split.batch(torch.tensor([1, 0]))
    assert set(batch) == {"input_ids", "labels", "attention_mask"} and batch["labels"].tolist() == [1, 0]


def test_csv_with_named_fields_and_no_padding(build, tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("sentence,y\nab,1\ncd,0\nef,1\n")
    bundle = all_examples(build, path, n=2, text="sentence", label="y")
    assert bundle.train.attention_mask is None  # every record has 2 tokens
    assert bundle.train.labels.tolist() == [1, 0, 1] and bundle.train.labels.dim() == 1
    assert bundle.description.startswith("classify(") and bundle.description.endswith("3 train / 0 valid / 0 test examples")


def test_word_tokenizer_pads_with_its_pad_id(build, jsonl, tmp_path: Path, word_tokenizer_dir: Path) -> None:
    tok = load_hf_tokenizer(str(word_tokenizer_dir), None, name="words")
    path = jsonl(tmp_path / "d.jsonl", [{"text": "the cat sat", "label": 1}, {"text": "bad dog", "label": 0},
                                        {"text": "good", "label": 1}])
    bundle = build("classify", task=Task("classify", 2), tokenizer=tok, source=str(path), valid=0.0, test=0.0)
    assert bundle.train.input_ids.tolist() == [[3, 4, 5], [14, 9, 0], [13, 0, 0]]
    assert bundle.max_token_id == 14


@pytest.mark.parametrize("label, message", [(3, "label 3, outside 0..2"), (-1, "label -1, outside 0..2"),
                                            ("pos", "not a class number"), (1.5, "not a class number")])
def test_bad_label_is_located(build, jsonl, tmp_path: Path, loc, label, message: str) -> None:
    records = [{"text": t, "label": 0} for t in TEXTS]
    records[4]["label"] = label
    if isinstance(label, str):  # one column type for datasets: every label a string
        records = [{"text": r["text"], "label": str(r["label"])} for r in records]
    if isinstance(label, float):
        records = [{"text": r["text"], "label": float(r["label"])} for r in records]
    path = jsonl(tmp_path / "d.jsonl", records)
    with pytest.raises(SpecError) as info:
        all_examples(build, path)
    (d,) = info.value.diagnostics
    assert d.location == loc and message in d.message
    assert ("record 1 " if isinstance(label, str) else "record 5 ") in d.message


def test_missing_field_and_empty_text_are_located(build, jsonl, tmp_path: Path, loc) -> None:
    path = jsonl(tmp_path / "d.jsonl", [{"sentence": t, "label": 0} for t in TEXTS])
    with pytest.raises(SpecError) as info:
        all_examples(build, path)
    assert info.value.diagnostics[0].location == loc and "no field 'text'" in info.value.diagnostics[0].message
    assert "sentence" in info.value.diagnostics[0].hint
    path = jsonl(tmp_path / "e.jsonl", [{"text": t, "label": 0} for t in ["a", "", "b"]])
    with pytest.raises(SpecError, match="record 2 .* no tokens"):
        all_examples(build, path)


def test_splits_are_disjoint_and_deterministic(build, jsonl, tmp_path: Path) -> None:
    path = jsonl(tmp_path / "d.jsonl", [{"text": f"example {i}", "label": i % 2} for i in range(40)])

    def make(seed: int):
        return build("classify", task=Task("classify", 2), tokenizer=BYTES, source=str(path), seed=seed,
                     valid=0.25, test=0.25)

    a, b, c = make(0), make(0), make(1)
    sets = [{tuple(r) for r in s.input_ids.tolist()} for s in (a.train, a.valid, a.test)]
    assert [len(s) for s in sets] == [20, 10, 10]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    assert torch.equal(a.test.input_ids, b.test.input_ids) and torch.equal(a.test.labels, b.test.labels)
    assert not torch.equal(a.test.input_ids, c.test.input_ids)

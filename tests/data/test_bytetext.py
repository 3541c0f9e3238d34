"""bytetext() and retrieval(): texts as their UTF-8 bytes cut to their first `length` (LRA's truncation), padded
with 256; IMDb's folder layout (neg 0, pos 1, train/unsup left out, its test split kept) and records give the
same sequences; AAN pairs side by side, each document padded to the longest."""

from __future__ import annotations

from collections import Counter

import pytest

from hybridc.errors import SpecError
from hybridc.spec.model import Task
from tests.data.conftest import make, write_jsonl

TWO = Task("classify", 2)
REVIEWS = {("train", "neg"): ["dull.", "a waste of an evening, très mauvais", "no"],
           ("train", "pos"): ["loved it", "wonderful — five stars 🌟", "yes!"],
           ("test", "neg"): ["bad"], ("test", "pos"): ["good fun"]}


def imdb(root):
    for (split, label), texts in REVIEWS.items():
        d = root / "aclImdb" / split / label
        d.mkdir(parents=True)
        for k, text in enumerate(texts):
            (d / f"{k}_7.txt").write_bytes(text.encode("utf-8"))
    unsup = root / "aclImdb" / "train" / "unsup"
    unsup.mkdir()
    (unsup / "0_0.txt").write_text("not labelled")
    return root / "aclImdb"


def decoded(split) -> Counter:
    out = Counter()
    for ids, mask, label in zip(split.input_ids, split.attention_mask, split.labels):
        real = ids[mask.bool()].tolist()
        assert (ids[~mask.bool()] == 256).all()
        out[(bytes(real), int(label))] += 1
    return out


def test_imdb_folder_and_records_give_the_bytes_cut_as_lra(tmp_path):
    root = imdb(tmp_path)
    b = make("bytetext", task=TWO, base_dir=tmp_path, source="aclImdb", length=12, valid=0.2)
    cut = {(t.encode("utf-8")[:12], int(label == "pos")) for (split, label), texts in REVIEWS.items() for t in texts
           if split == "train"}
    assert set(decoded(b.train) + decoded(b.valid)) == cut  # unsup is no class
    assert decoded(b.test) == Counter({(b"bad", 0): 1, (b"good fun", 1): 1})  # the archive's test split
    assert b.train.input_ids.shape[1] == 12
    # a 4-byte emoji cut in the middle stays cut (bytes, not characters): 'wonderful — five' is 18 bytes
    long = make("bytetext", task=TWO, base_dir=tmp_path, source=str(root), length=30, valid=0.2)
    assert ("wonderful — five stars 🌟".encode()[:30], 1) in decoded(long.train) + decoded(long.valid)
    records = write_jsonl(tmp_path / "r.jsonl", [{"text": t, "label": int(label == "pos")}
                                                 for (split, label), texts in REVIEWS.items() for t in texts])
    r = make("bytetext", task=TWO, base_dir=tmp_path, source=str(records), length=12, valid=0.2, test=0.2)
    assert sum((decoded(s) for s in (r.train, r.valid, r.test)), Counter()) == Counter(
        (t.encode("utf-8")[:12], int(label == "pos")) for (_, label), texts in REVIEWS.items() for t in texts)


def test_more_class_folders_than_classes_is_a_located_error(tmp_path, loc):
    root = imdb(tmp_path)
    for split in ("train", "test"):
        (root / split / "meh").mkdir()
        (root / split / "meh" / "0_5.txt").write_text("so so")
    with pytest.raises(SpecError) as err:
        make("bytetext", task=TWO, base_dir=tmp_path, source="aclImdb")
    (d,) = err.value.diagnostics
    assert d.location == loc and "3 class folders (meh, neg, pos)" in d.message and "classify(3)" in d.hint


def aan(root, lines=None):
    root.mkdir()
    pairs = {"train": [(1, "alpha beta", "gamma"), (0, "delta", "epsilon zeta eta"), (1, "x", "yy"), (0, "p q", "r")],
             "eval": [(0, "one", "two"), (1, "three", "four")], "test": [(1, "five", "six six")]}
    for split, rows in pairs.items():
        text = "".join(f"{float(label)}\tid{k}\tid{k}b\t{a}\t{b}\n" for k, (label, a, b) in enumerate(rows))
        (root / f"new_aan_pairs.{split}.tsv").write_text(lines.get(split, text) if lines else text)
    return pairs


def test_aan_pairs_side_by_side_each_document_padded(tmp_path):
    pairs = aan(tmp_path / "aan")
    b = make("retrieval", task=Task("match", 2), base_dir=tmp_path, source="aan", length=8)
    assert len(b.train) == 4 and len(b.valid) == 2 and len(b.test) == 1  # LRA's three files are the splits
    assert b.train.input_ids.shape[1] == 2 * 8  # 'epsilon zeta eta' is cut to 8 bytes: the longest kept document
    seen = set()
    for split in (b.train, b.valid, b.test):
        width = split.input_ids.shape[1] // 2
        for ids, mask, label in zip(split.input_ids, split.attention_mask, split.labels):
            first, second = ids[:width][mask[:width].bool()], ids[width:][mask[width:].bool()]
            assert mask[:width].tolist() == sorted(mask[:width].tolist(), reverse=True)  # right-padded halves
            seen.add((int(label), bytes(first.tolist()).decode(), bytes(second.tolist()).decode()))
    assert seen == {(label, a[:8], c[:8]) for rows in pairs.values() for label, a, c in rows}


@pytest.mark.parametrize("split,text,fragment", [
    ("train", "1.0\tid\tid\tonly four\n", "line 1 of 'new_aan_pairs.train.tsv' has 4 tab-separated fields"),
    ("test", "2.0\ta\tb\tc\td\n", "has label 2.0, outside the classes 0..1"),
    ("eval", "", "'new_aan_pairs.eval.tsv' is empty: the valid split has no pairs"),
])
def test_bad_aan_files_are_located_errors(tmp_path, loc, split, text, fragment):
    aan(tmp_path / "aan", {split: text})
    with pytest.raises(SpecError) as err:
        make("retrieval", task=Task("match", 2), base_dir=tmp_path, source="aan")
    (d,) = err.value.diagnostics
    assert d.location == loc and fragment in d.message

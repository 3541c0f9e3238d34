"""text(...) data (hybridc/data/text.py): documents through datasets, eos, blocks, splits, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hybridc.data import ByteTokenizer, load_hf_tokenizer
from hybridc.errors import RunError, SpecError

BYTES = ByteTokenizer()
EOS = BYTES.eos_id


def all_blocks(build, path: Path, block: int, **kw):
    """Every block in order: no held-out splits."""
    bundle = build("text", tokenizer=BYTES, source=str(path), block=block, valid=0.0, test=0.0, **kw)
    assert len(bundle.valid) == len(bundle.test) == 0
    return bundle


def stream_of(*docs: str) -> list[int]:
    out: list[int] = []
    for d in docs:
        out += list(d.encode()) + [EOS]
    return out


def test_txt_file_is_one_document(build, tmp_path: Path) -> None:
    text = "hello world\nsecond line\n" * 3
    path = tmp_path / "corpus.txt"
    path.write_text(text, encoding="utf-8")
    bundle = all_blocks(build, path, 8)
    stream = stream_of(text)  # one eos, at the very end of the file
    n = len(stream) // 8
    assert torch.equal(bundle.train.input_ids, torch.tensor(stream[: n * 8]).view(n, 8))
    assert torch.equal(bundle.train.labels, bundle.train.input_ids)  # the model shifts
    assert bundle.train.attention_mask is None
    assert bundle.max_token_id == int(bundle.train.input_ids.max())


def test_jsonl_through_datasets_with_eos_after_each_document(build, jsonl, tmp_path: Path, monkeypatch) -> None:
    import datasets

    calls = []
    real = datasets.load_dataset
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    docs = ["first document", "zweites Dokument é", "third"]
    path = jsonl(tmp_path / "docs.jsonl", [{"body": d, "id": i} for i, d in enumerate(docs)])
    bundle = all_blocks(build, path, 5, field="body")
    assert calls == ["json"]
    stream = stream_of(*docs)
    n = len(stream) // 5
    assert len(stream) % 5 != 0  # the remainder is dropped
    assert bundle.train.input_ids.flatten().tolist() == stream[: n * 5]
    flat = bundle.train.input_ids.flatten()
    assert (flat == EOS).sum() == sum(1 for i, t in enumerate(stream[: n * 5]) if t == EOS)


def test_directory_reads_txt_and_jsonl_in_sorted_order(build, jsonl, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "b.txt").write_text("bbbb")
    jsonl(data / "a.jsonl", [{"text": "a1"}, {"text": "a2"}])
    (data / "c.md").write_text("ignored")
    bundle = all_blocks(build, data, 2)
    assert bundle.train.input_ids.flatten().tolist() == stream_of("a1", "a2", "bbbb")[:10]


def test_paths_are_relative_to_base_dir(build, tmp_path: Path) -> None:
    (tmp_path / "c.txt").write_text("x" * 100)
    bundle = build("text", tokenizer=BYTES, base_dir=tmp_path, source="c.txt", block=10)
    assert len(bundle.train) + len(bundle.valid) + len(bundle.test) == 10
    assert bundle.description == "text(c.txt, block=10): 8 train / 1 valid / 1 test sequences"


def test_hf_tokenizer_eos(build, jsonl, tmp_path: Path, word_tokenizer_dir: Path) -> None:
    tok = load_hf_tokenizer(str(word_tokenizer_dir), None, name="words")
    path = jsonl(tmp_path / "d.jsonl", [{"text": "the cat sat"}, {"text": "a dog"}, {"text": "ran far away"}])
    bundle = build("text", tokenizer=tok, source=str(path), block=3, valid=0.0, test=0.0)
    assert bundle.train.input_ids.tolist() == [[3, 4, 5], [2, 7, 9], [2, 10, 11]]  # 12 away, 2 dropped


def test_too_little_text_is_located(build, tmp_path: Path, loc) -> None:
    (tmp_path / "short.txt").write_text("x" * 100)
    with pytest.raises(SpecError) as info:
        build("text", tokenizer=BYTES, base_dir=tmp_path, source="short.txt", block=64)
    (d,) = info.value.diagnostics
    assert (d.location.file, d.location.line, d.location.col) == (loc.file, loc.line, loc.col)
    assert "only 101 tokens, fewer than 3 blocks of 64" in d.message
    assert "smaller block" in d.hint


def test_no_tokenizer_is_located(build, tmp_path: Path, loc) -> None:
    (tmp_path / "c.txt").write_text("x" * 100)
    with pytest.raises(SpecError) as info:
        build("text", tokenizer=None, base_dir=tmp_path, source="c.txt", block=8)
    (d,) = info.value.diagnostics
    assert d.location == loc and "tokenizer: bytes" in d.hint


@pytest.mark.parametrize("name, content, message", [
    ("d.jsonl", '{"body": "x"}\n', "no field 'text'"),
    ("d.jsonl", '{"text": "x"}\n{"text": 3}\n', "record 2"),
    ("d.csv", "text\nx\n", "reads .txt or .jsonl"),
    ("missing.txt", None, "no such data file"),
])
def test_bad_sources_are_located(build, tmp_path: Path, loc, name: str, content: str | None, message: str) -> None:
    if content is not None:
        (tmp_path / name).write_text(content)
    with pytest.raises(SpecError) as info:
        build("text", tokenizer=BYTES, base_dir=tmp_path, source=name, block=2)
    (d,) = info.value.diagnostics
    assert d.location == loc and message in d.message


def test_malformed_jsonl_is_a_run_error(build, tmp_path: Path) -> None:
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\n{"text": \n')
    with pytest.raises(RunError) as info:
        build("text", tokenizer=BYTES, base_dir=tmp_path, source="bad.jsonl", block=2)
    assert "bad.jsonl" in str(info.value) and info.value.hint


def test_hub_dataset_offline_is_a_run_error(build) -> None:
    with pytest.raises(RunError) as info:
        build("text", tokenizer=BYTES, source="hf:hybridc-tests/no-such-dataset", block=8)
    assert "hf:hybridc-tests/no-such-dataset" in str(info.value) and ".jsonl" in info.value.hint


def unique_blocks_corpus(tmp_path: Path) -> Path:
    path = tmp_path / "numbers.txt"
    path.write_text("".join(f"{i:07d}|" for i in range(300)))  # block 8: every block distinct
    return path


def rows(split) -> set[tuple[int, ...]]:
    return {tuple(r) for r in split.input_ids.tolist()}


def test_splits_are_disjoint_and_complete(build, tmp_path: Path) -> None:
    bundle = build("text", tokenizer=BYTES, source=str(unique_blocks_corpus(tmp_path)), block=8, valid=0.1, test=0.2)
    train, valid, test = rows(bundle.train), rows(bundle.valid), rows(bundle.test)
    assert (len(train), len(valid), len(test)) == (210, 30, 60)
    assert not (train & valid) and not (train & test) and not (valid & test)
    everything = all_blocks(build, unique_blocks_corpus(tmp_path), 8)
    assert train | valid | test == rows(everything.train)


def test_deterministic_by_seed(build, tmp_path: Path) -> None:
    path = str(unique_blocks_corpus(tmp_path))
    a = build("text", tokenizer=BYTES, source=path, block=8, seed=0)
    b = build("text", tokenizer=BYTES, source=path, block=8, seed=0)
    c = build("text", tokenizer=BYTES, source=path, block=8, seed=1)
    for name in ("train", "valid", "test"):
        assert torch.equal(getattr(a, name).input_ids, getattr(b, name).input_ids)
    assert not torch.equal(a.test.input_ids, c.test.input_ids)
    assert rows(a.train) | rows(a.valid) | rows(a.test) == rows(c.train) | rows(c.valid) | rows(c.test)

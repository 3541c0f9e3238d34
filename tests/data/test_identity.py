"""The splits of a data source depend on the data's identity (what its files hold), never on how its path is
spelled: relative, absolute, with ./ or .., through a linked file or directory, from another base directory
(``hybridc eval --data`` resolves against the working directory), or a copy elsewhere."""

from __future__ import annotations

import random
from pathlib import Path

import torch

from hybridc.data import ByteTokenizer

BYTES = ByteTokenizer()


def _spellings(tmp_path: Path, name: str, monkeypatch) -> list[tuple[str, Path]]:
    """(path as written, the directory it is relative to) for one file ``tmp_path/data/NAME``."""
    data = tmp_path / "data"
    (tmp_path / "linked-dir").symlink_to(data, target_is_directory=True)
    (data / f"link-{name}").symlink_to(data / name)
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / f"renamed{Path(name).suffix}").write_bytes((data / name).read_bytes())
    monkeypatch.setenv("HOME", str(tmp_path))
    return [
        (name, data), (f"./{name}", data), (f"data/{name}", tmp_path), (str(data / name), Path("/")),
        (f"../data/{name}", tmp_path / "copy"), (f"{data}/./sub/../{name}", tmp_path),
        (f"linked-dir/{name}", tmp_path), (f"link-{name}", data), (f"~/data/{name}", tmp_path / "copy"),
        (f"renamed{Path(name).suffix}", tmp_path / "copy"),
    ]


def _same(a, b) -> bool:
    if a.source != b.source:
        return False
    return all(torch.equal(getattr(a, s).input_ids, getattr(b, s).input_ids) and
               torch.equal(getattr(a, s).labels, getattr(b, s).labels) for s in ("train", "valid", "test"))


def test_a_text_file_spelled_many_ways_splits_one_way(build, tmp_path, monkeypatch):
    rng = random.Random(37)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "corpus.txt").write_text(
        " ".join(f"{rng.randrange(10**6):06d}" for _ in range(600)), encoding="utf-8")
    (tmp_path / "data" / "sub").mkdir()
    seed = rng.randrange(1000)
    bundles = [build("text", tokenizer=BYTES, source=spelled, block=16, seed=seed, base_dir=base)
               for spelled, base in _spellings(tmp_path, "corpus.txt", monkeypatch)]
    first = bundles[0]
    assert len(first.test) > 10 and "sha256:" in first.source
    assert all(_same(first, b) for b in bundles[1:])
    # the search split of an alternating search too
    searched = {(tuple(map(tuple, b.search_split(0.25, seed)[1].input_ids.tolist()))) for b in bundles}
    assert len(searched) == 1
    # another seed still moves examples; other content is other data
    assert not torch.equal(build("text", tokenizer=BYTES, source="corpus.txt", block=16, seed=seed + 1,
                                 base_dir=tmp_path / "data").test.input_ids, first.test.input_ids)
    (tmp_path / "data" / "other.txt").write_text((tmp_path / "data" / "corpus.txt").read_text() + "!")
    other = build("text", tokenizer=BYTES, source="other.txt", block=16, seed=seed, base_dir=tmp_path / "data")
    assert other.source != first.source


def test_a_directory_and_a_labelled_file_spelled_otherwise_split_one_way(build, jsonl, tmp_path, monkeypatch):
    from hybridc.spec.model import Task

    rng = random.Random(38)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "sub").mkdir()
    jsonl(tmp_path / "data" / "reviews.jsonl",
          [{"text": " ".join(rng.choice("abcdefgh") for _ in range(6)), "label": rng.randrange(3)} for _ in range(80)])
    one = build("classify", task=Task("classify", 3), tokenizer=BYTES, source="reviews.jsonl", block=16,
                base_dir=tmp_path / "data")
    for spelled, base in _spellings(tmp_path, "reviews.jsonl", monkeypatch):
        assert _same(one, build("classify", task=Task("classify", 3), tokenizer=BYTES, source=spelled, block=16,
                                base_dir=base)), spelled
    corpus = tmp_path / "texts"
    corpus.mkdir()
    for i in range(3):
        (corpus / f"{i}.txt").write_text(" ".join(str(rng.randrange(10**5)) for _ in range(100)))
    (tmp_path / "texts-link").symlink_to(corpus, target_is_directory=True)
    a = build("text", tokenizer=BYTES, source="texts", block=16, base_dir=tmp_path)
    b = build("text", tokenizer=BYTES, source=f"{tmp_path}/texts-link/", block=16, base_dir=Path("/"))
    assert _same(a, b)

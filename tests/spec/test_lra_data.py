"""The Long Range Arena data sources at validate: bad data is a located error on the data expression, with a
hint (a missing directory, a CIFAR batch of the wrong size, an image of the wrong shape or mode, labels outside
the classes, an empty split, a malformed AAN line, a vocabulary or task that does not fit), and good data of
every source validates and trains two steps."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from hybridc.errors import SpecError
from hybridc.spec import load_spec
from tests.specs import write_spec

SPEC = textwrap.dedent("""\
    hybridc: 1
    name: lra-data
    components:
      attn: {init: {family: gpt-neo, hidden_size: 16, layers: 1, heads: 2, vocab_size: VOCAB, max_length: 4100}, blocks: split(1)}
      ssm: {init: {family: mamba, hidden_size: 16, layers: 1, vocab_size: VOCAB}, blocks: split(1)}
    task: TASK
    train:
      stages:
        - {name: search, data: 'DATA', steps: 2, batch_size: 4}
    """)
DATA_AT = (9, 28)  # where the data expression is written


def spec(tmp_path: Path, data: str, task: str = "classify(10)", vocab: int = 257) -> Path:
    return write_spec(tmp_path, SPEC.replace("DATA", data).replace("TASK", task).replace("VOCAB", str(vocab)))


def one_error(path: Path):
    with pytest.raises(SpecError) as info:
        load_spec(path)
    (d,) = info.value.diagnostics
    assert (d.location.line, d.location.col) == DATA_AT, d.render()
    assert d.hint, d.render()
    return d


def cifar(root: Path, sizes=(3 * 3073, 2 * 3073)) -> Path:
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, size in zip(("data_batch_1.bin", "test_batch.bin"), sizes):
        records = rng.integers(0, 256, size, dtype=np.uint8)
        records[:: 3073] = rng.integers(0, 10, len(records[:: 3073]))
        records.tofile(root / name)
    return root


def image_folder(root: Path, mode: str = "RGB", size=(8, 8), odd: dict | None = None, classes=("cat", "dog")) -> Path:
    from PIL import Image

    for split in ("train", "test"):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for k in range(3):
                shape = (odd or {}).get((split, c, k), (mode, size))
                Image.new(shape[0], shape[1]).save(root / split / c / f"{k}.png")
    return root


def test_a_missing_data_directory(tmp_path):
    d = one_error(spec(tmp_path, "pixels(cifar)"))
    assert "no such data file 'cifar'" in d.message


def test_a_cifar_batch_of_the_wrong_size(tmp_path):
    cifar(tmp_path / "cifar-10-batches-bin", sizes=(3 * 3073, 2 * 3073 + 5))
    d = one_error(spec(tmp_path, "pixels(cifar-10-batches-bin)"))
    assert "'test_batch.bin' has 6,151 bytes, not a whole number of images of 3073 bytes" in d.message


def test_cifar_has_ten_classes(tmp_path):
    cifar(tmp_path / "c" / "cifar-10-batches-bin")
    d = one_error(spec(tmp_path, "pixels(c)", task="classify(2)"))
    assert "has 10 classes (CIFAR-10), but the task is classify(2)" in d.message and "classify(10)" in d.hint


@pytest.mark.parametrize("odd, fragment", [
    ({("train", "dog", 1): ("RGBA", (8, 8))}, "has mode RGBA, not L (gray) or RGB"),
    ({("test", "cat", 0): ("RGB", (8, 9))}, "is 8x9, but the first image is 8x8"),
])
def test_an_image_of_the_wrong_mode_or_shape(tmp_path, odd, fragment):
    image_folder(tmp_path / "imgs", odd=odd)
    d = one_error(spec(tmp_path, "pixels(imgs)"))
    assert fragment in d.message


def test_gray_images_cannot_give_rgb(tmp_path):
    image_folder(tmp_path / "imgs", mode="L")
    d = one_error(spec(tmp_path, "pixels(imgs, mode=rgb)"))
    assert "is grayscale (mode L), but mode=rgb" in d.message


def test_labels_outside_the_classes(tmp_path):
    x = np.zeros((4, 8, 8), np.uint8)
    np.savez(tmp_path / "a.npz", images=x, labels=np.array([0, 3, 12, 1]))
    d = one_error(spec(tmp_path, "pixels(a.npz)"))
    assert "'labels' has label 12, outside 0..9 for classify(10)" in d.message
    image_folder(tmp_path / "three", classes=("a", "b", "c"))
    d = one_error(spec(tmp_path, "pixels(three)", task="classify(2)"))
    assert "has 3 classes (folders a, b, c), but the task is classify(2)" in d.message


def test_an_empty_split(tmp_path):
    image_folder(tmp_path / "imgs")
    for f in (tmp_path / "imgs" / "test").rglob("*.png"):
        f.unlink()
    d = one_error(spec(tmp_path, "pixels(imgs)"))
    assert "the test split" in d.message and "has no images (an empty split)" in d.message
    (tmp_path / "aan").mkdir()
    (tmp_path / "aan" / "x.train.tsv").write_text("1.0\ta\tb\tone\ttwo\n")
    (tmp_path / "aan" / "x.test.tsv").write_text("")
    d = one_error(spec(tmp_path, "retrieval(aan)", task="match(2)"))
    assert "'x.test.tsv' is empty: the test split has no pairs" in d.message


@pytest.mark.parametrize("data, task, vocab, fragment", [
    ("pathfinder(resolution=48)", "classify(2)", 257, "resolution 32, 64 or 128, not 48"),
    ("pathfinder()", "classify(10)", 257, "pathfinder() labels are 0 and 1, but the task is classify(10)"),
    ("pathfinder(resolution=128)", "classify(2)", 257, "sequences of 16384 tokens are longer than 'attn' allows (4100)"),
    ("pathfinder()", "classify(2)", 18, "pathfinder() uses token ids 0-255 (pixel values), but the hybrid's vocabulary has 18"),
    ("pixels(hf:uoft/cifar10)", "classify(10)", 257, "pixels() reads local files, not a Hub dataset"),
    ("retrieval(aan)", "classify(2)", 257, "retrieval() data is for match, but the task is classify(2)"),
    ("bytetext(reviews.txt)", "classify(2)", 257, "expected a folder of texts per class (IMDb's aclImdb/) or a .jsonl"),
])
def test_what_does_not_fit_the_task_or_the_components(tmp_path, data, task, vocab, fragment):
    (tmp_path / "reviews.txt").write_text("good\n")
    (tmp_path / "aan").mkdir()
    (tmp_path / "aan" / "x.train.tsv").write_text("1.0\ta\tb\tone\ttwo\n")
    d = one_error(spec(tmp_path, data, task=task, vocab=vocab))
    assert fragment in d.message


def test_a_malformed_aan_line(tmp_path):
    (tmp_path / "aan").mkdir()
    (tmp_path / "aan" / "x.train.tsv").write_text("1.0\ta\tb\tone\ttwo\n0\ta\tb\tthree\n")
    d = one_error(spec(tmp_path, "retrieval(aan)", task="match(2)"))
    assert "line 2 of 'x.train.tsv' has 4 tab-separated fields, not 5" in d.message


def test_every_lra_source_validates_and_trains_two_steps(tmp_path, monkeypatch):
    """pathfinder, pixels and bytetext in one classify(2) spec (a stage each), retrieval in a match(2) one."""
    from hybridc.train.run import TrainOptions, train

    image_folder(tmp_path / "imgs", mode="L", size=(16, 16))
    for split, texts in (("train", ["good", "great fun", "bad", "dull"] * 2), ("test", ["fine", "awful"])):
        for k, text in enumerate(texts):
            d = tmp_path / "aclImdb" / split / ("pos" if k % 2 == 0 else "neg")
            d.mkdir(parents=True, exist_ok=True)
            (d / f"{k}.txt").write_text(text)
    text = SPEC.replace("TASK", "classify(2)").replace("VOCAB", "257").replace(
        "- {name: search, data: 'DATA', steps: 2, batch_size: 4}",
        "- {name: search, data: 'pathfinder(examples=16)', steps: 2, batch_size: 4}\n"
        "    - {name: images, kind: finetune, data: 'pixels(imgs, valid=0.25)', steps: 2, batch_size: 4}\n"
        "    - {name: texts, kind: finetune, data: 'bytetext(aclImdb, length=8, valid=0.25)', steps: 2, batch_size: 4}")
    rs = load_spec(write_spec(tmp_path, text, "classify.yaml"))
    result = train(rs, TrainOptions(out_dir=tmp_path / "run", quiet=True), say=lambda _: None)
    assert result.test is not None and 0 <= result.test["accuracy"] <= 1
    (tmp_path / "aan").mkdir()
    for split, n in (("train", 8), ("eval", 2), ("test", 2)):
        (tmp_path / "aan" / f"p.{split}.tsv").write_text(
            "".join(f"{k % 2}.0\ta{k}\tb{k}\tdocument {k}\tanother {k * 7}\n" for k in range(n)))
    short = write_spec(tmp_path, SPEC.replace("DATA", "retrieval(aan, length=16)").replace("TASK", "match(2)")
                       .replace("VOCAB", "257").replace("max_length: 4100", "max_length: 24"), "pairs.yaml")
    rs = load_spec(short)  # 24 positions: each document (16 bytes) fits, a pair's row (32) would not
    result = train(rs, TrainOptions(out_dir=tmp_path / "pairs", quiet=True), say=lambda _: None)
    assert result.test is not None and result.test["targets"] == 2
    # hybridc eval of the saved pair model gives the run's own test numbers (each half within its positions)
    from hybridc.inference.evaluate import evaluate_directory

    monkeypatch.chdir(tmp_path)
    again = evaluate_directory(tmp_path / "pairs", "retrieval(aan, length=16)")
    assert again["accuracy"] == result.test["accuracy"] and abs(again["loss"] - result.test["loss"]) < 1e-5


def test_a_file_inside_a_data_directory_may_not_escape_the_root(tmp_path):
    root = tmp_path / "root"
    image_folder(root / "imgs")
    outside = tmp_path / "secret.png"
    (root / "imgs" / "train" / "cat" / "0.png").rename(outside)
    (root / "imgs" / "train" / "cat" / "0.png").symlink_to(outside)
    path = spec(root, "pixels(imgs)")
    with pytest.raises(SpecError) as info:
        load_spec(path, root=root)
    (d,) = info.value.diagnostics
    assert (d.location.line, d.location.col) == DATA_AT and "escapes the root" in d.message
    assert load_spec(path).spec.name == "lra-data"  # without a root the link is read

"""pixels(): CIFAR-10's binary batches, a folder of images per class and an .npz of the same images give the
same sequences; gray values are LRA's (tf.image.rgb_to_grayscale on uint8), checked by hand; rgb interleaves
the colours; the source's test split is the test split."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from hybridc.data.pixels import to_gray
from hybridc.errors import SpecError
from hybridc.spec.model import Task
from tests.data.conftest import make

TEN = Task("classify", 10)


def images(seed: int = 0, n: int = 14) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, size=n).astype(np.uint8)


def write_cifar(root: Path, x: np.ndarray, y: np.ndarray, test: int = 4) -> Path:
    """CIFAR-10's binary layout: per image a label byte, then the red, green and blue planes (1024 bytes each)."""
    root.mkdir(parents=True)
    records = np.concatenate([y[:, None], x.transpose(0, 3, 1, 2).reshape(len(x), -1)], axis=1).astype(np.uint8)
    train = records[:-test]
    half = len(train) // 2
    train[:half].tofile(root / "data_batch_1.bin")
    train[half:].tofile(root / "data_batch_2.bin")
    records[-test:].tofile(root / "test_batch.bin")
    return root


def write_folder(root: Path, x: np.ndarray, y: np.ndarray, test: int = 4) -> Path:
    from PIL import Image

    for split, xs, ys in (("train", x[:-test], y[:-test]), ("test", x[-test:], y[-test:])):
        for k, (image, label) in enumerate(zip(xs, ys)):
            d = root / split / f"class{label}"
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(d / f"{k:03d}.png")
        for label in range(10):  # every class has a folder in both splits, as a CIFAR export has
            (root / split / f"class{label}").mkdir(parents=True, exist_ok=True)
    return root


def rows(*splits) -> Counter:
    return Counter((tuple(r.tolist()), int(label)) for s in splits for r, label in zip(s.input_ids, s.labels))


def test_cifar_batches_an_image_folder_and_an_npz_give_the_same_sequences(tmp_path):
    x, y = images()
    cifar = write_cifar(tmp_path / "cifar-10-batches-bin", x, y)
    np.savez(tmp_path / "c.npz", x_train=x[:-4], y_train=y[:-4], x_test=x[-4:], y_test=y[-4:])
    folder = write_folder(tmp_path / "folder", x, y)
    # the folder's classes are numbered by their sorted names: class0 .. class9, as the labels
    built = {name: make("pixels", task=TEN, base_dir=tmp_path, source=str(path), valid=0.2)
             for name, path in (("cifar", cifar.parent), ("npz", tmp_path / "c.npz"), ("folder", folder))}
    expected_test = Counter((tuple(to_gray(im).reshape(-1).tolist()), int(label)) for im, label in zip(x[-4:], y[-4:]))
    expected_train = Counter((tuple(to_gray(im).reshape(-1).tolist()), int(label)) for im, label in zip(x[:-4], y[:-4]))
    for name, b in built.items():
        assert rows(b.test) == expected_test, name
        assert rows(b.train, b.valid) == expected_train, name
        assert len(b.valid) == 2 and b.train.input_ids.shape[1] == 1024 and b.max_token_id <= 255


def test_gray_is_lras_and_rgb_interleaves_the_colours(tmp_path):
    pixel = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [10, 200, 30], [0, 0, 0]], np.uint8)
    # tf.image.rgb_to_grayscale: weights on values scaled to [0, 1], then x 255.5, truncated
    by_hand = [int(0.2989 * 255.5), int(0.5870 * 255.5), int(0.1140 * 255.5), int(0.9999 * 255.5),
               int((10 * 0.2989 + 200 * 0.5870 + 30 * 0.1140) / 255 * 255.5), 0]
    assert to_gray(pixel).tolist() == by_hand == [76, 149, 29, 255, 124, 0]
    x, y = images(1, 6)
    np.savez(tmp_path / "c.npz", images=x, labels=y)
    b = make("pixels", task=TEN, base_dir=tmp_path, source="c.npz", mode="rgb", valid=0.2, test=0.2)
    assert b.train.input_ids.shape[1] == 3072
    first = b.train.input_ids[0].view(32, 32, 3)  # row-major pixels, each red, green, blue
    assert any(np.array_equal(first.numpy(), im) for im in x)


def test_a_bad_image_past_the_ones_validate_reads_is_a_located_error_when_the_data_loads(tmp_path, loc):
    from PIL import Image

    x, y = images(2, 30)
    y[:] = 3
    folder = tmp_path / "imgs" / "three"
    folder.mkdir(parents=True)
    for k, image in enumerate(x):
        Image.fromarray(image if k != 27 else image[:16, :16]).save(folder / f"{k:03d}.png")
    with pytest.raises(SpecError) as err:
        make("pixels", task=TEN, base_dir=tmp_path, source="imgs")
    (d,) = err.value.diagnostics
    assert d.location == loc and "027.png' is 16x16, but the first image is 32x32" in d.message


def test_labels_outside_the_classes_are_located_errors_when_the_data_loads(tmp_path, loc):
    x, y = images(3, 8)
    y[5] = 12
    root = write_cifar(tmp_path / "cifar-10-batches-bin", x, y)
    with pytest.raises(SpecError) as err:
        make("pixels", task=TEN, base_dir=tmp_path, source=str(root))
    (d,) = err.value.diagnostics
    assert d.location == loc and "has label 12, outside 0..9" in d.message

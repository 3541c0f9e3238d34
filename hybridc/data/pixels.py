"""``pixels(source, mode=gray, limit=null, valid=0.1, test=0.1)``: image classification as a sequence of
pixel values, LRA's Image task (CIFAR-10 in grayscale: 1024 tokens, 10 classes).

The images come from CIFAR-10's binary batches, a folder of images per class or an ``.npz`` of uint8
arrays (read with ``allow_pickle=False``: nothing is unpickled); ``hybridc.spec.data_layouts`` finds the
files. Each image becomes its pixels row by row, one token per pixel (``gray``: values 0-255) or three
(``rgb``: red, green, blue of each pixel in turn). Gray values of colour images are LRA's
(``tf.image.rgb_to_grayscale``: 0.2989 R + 0.5870 G + 0.1140 B on values scaled to [0, 1], then times 255.5
and truncated, in float32); gray images are read as they are. The source's test split (CIFAR's
``test_batch.bin``, ``test/``, ``x_test``) is the test split and valid= of its training images are held
out (LRA: the last 10%, here a seeded draw); a source without one is split by valid= and test=.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..spec.data_layouts import CIFAR_RECORD, LayoutError, check_image, npz_keys, pixel_layout
from ..spec.resolve import resolve_path
from .context import Examples, SourceContext
from .dataset import DataBundle, Split
from .splits import bundle_or_examples, limited

GRAY_WEIGHTS = np.array([0.2989, 0.5870, 0.1140], dtype=np.float32)


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 -> (...) uint8, as ``tf.image.rgb_to_grayscale`` does on uint8 images."""
    scaled = rgb.astype(np.float32) / np.float32(255.0)
    gray = (scaled * GRAY_WEIGHTS).sum(-1, dtype=np.float32)
    return np.clip(gray * np.float32(255.5), 0, 255).astype(np.uint8)


def tokens(images: np.ndarray, mode: str) -> np.ndarray:
    """(N, H, W) or (N, H, W, C) uint8 images -> (N, H*W) or (N, 3*H*W) uint8 tokens, row-major."""
    if images.ndim == 4 and images.shape[3] == 1:
        images = images[..., 0]
    if mode == "gray":
        gray = images if images.ndim == 3 else to_gray(images)
        return gray.reshape(len(gray), -1)
    return images.reshape(len(images), -1)


def build_pixels(ctx: SourceContext) -> Examples | DataBundle:
    """input_ids (N, T) long 0-255; labels (N,) long; no padding."""
    path = resolve_path(ctx.base_dir, str(ctx.arg("source")))
    if not path.exists():
        raise ctx.error(f"no such data file or directory '{ctx.arg('source')}'",
                        f"paths are relative to the spec file ({ctx.base_dir})")
    mode, limit = str(ctx.arg("mode")), ctx.arg("limit")
    try:
        layout = pixel_layout(path)
        if layout.kind == "cifar":
            parts = {split: _cifar(ctx, files, mode, limit) for split, files in layout.splits.items()}
        elif layout.kind == "images":
            parts = _folder(ctx, layout.labelled, mode, limit)
        else:
            parts = _npz(ctx, path, mode, limit)
    except LayoutError as err:
        raise ctx.error(f"pixels(): {err.message}", err.hint) from None
    return bundle_or_examples(ctx, parts, "images")


def _split(ctx: SourceContext, pixels: np.ndarray, labels: list[int] | np.ndarray, origin: str) -> Split:
    n = ctx.task.num_classes or 0
    labels = np.asarray(labels, dtype=np.int64)
    bad = np.flatnonzero((labels < 0) | (labels >= n))
    if len(bad):
        raise ctx.error(f"pixels(): image {bad[0] + 1} of {origin} has label {labels[bad[0]]}, outside 0..{n - 1} "
                        f"for {ctx.task}", f"the task has {n} classes, so labels are 0..{n - 1}")
    return Split(torch.from_numpy(pixels.astype(np.int64)), torch.from_numpy(labels))


def _cifar(ctx: SourceContext, files: tuple[Path, ...], mode: str, limit: int | None) -> Split:
    records = np.concatenate([np.fromfile(f, dtype=np.uint8).reshape(-1, CIFAR_RECORD) for f in files])
    records = records[:limit] if limit is not None else records
    images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # (N, 32, 32, 3)
    return _split(ctx, tokens(images, mode), records[:, 0], f"CIFAR-10 batches {', '.join(f.name for f in files)}")


def _folder(ctx: SourceContext, labelled: dict, mode: str, limit: int | None) -> dict[str, Split]:
    from PIL import Image

    parts = {}
    size = None
    for split, pairs in labelled.items():
        rows, labels = [], []
        for f, label in limited(list(pairs), limit):
            size = check_image(f, mode, size)
            with Image.open(f) as image:
                array = np.asarray(image)
            rows.append(tokens(array[None], mode)[0])
            labels.append(label)
        parts[split] = _split(ctx, np.stack(rows) if rows else np.zeros((0, 1), np.uint8), labels, f"'{split}/'")
    return parts if "test" in parts else {"all": parts["train"]}


def _npz(ctx: SourceContext, path: Path, mode: str, limit: int | None) -> dict[str, Split]:
    pairs = npz_keys(path)
    parts = {}
    with np.load(path, allow_pickle=False) as z:
        for x, y in pairs:
            images, labels = z[x][:limit], z[y][:limit]
            if mode == "rgb" and (images.ndim == 3 or images.shape[3] == 1):
                raise LayoutError(f"'{path.name}': '{x}' holds grayscale images, but mode=rgb reads three colours",
                                  "use mode=gray")
            split = "test" if x == "x_test" else ("train" if len(pairs) > 1 else "all")
            parts[split] = _split(ctx, tokens(images, mode), labels, f"'{path.name}' ({y})")
    return parts


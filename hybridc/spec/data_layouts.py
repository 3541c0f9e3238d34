"""Where the files of the Long Range Arena data sources are on disk, and what they hold, read without torch.

``validate`` checks a source through these functions (cheaply: sizes, headers, the first records), and
the loaders in ``hybridc.data`` find their files through the same ones, so both see one layout:

- ``pixels(source)``: CIFAR-10's binary batches (a directory holding ``data_batch_*.bin`` and
  ``test_batch.bin``, or the directory above it), a folder of images per class (``DIR/<class>/*`` or
  ``DIR/train/<class>/*`` and ``DIR/test/<class>/*``), or an ``.npz`` of arrays;
- ``bytetext(source)``: the IMDb archive's folder (``aclImdb/train/{neg,pos}/*.txt``, ``aclImdb/test/...``;
  the class folders are those ``train`` and ``test`` share, so IMDb's unlabelled ``train/unsup`` is not one),
  or a records file (``.jsonl``/``.csv``) as ``classify()`` reads;
- ``retrieval(source)``: LRA's AAN files (``*.train.tsv``, ``*.eval.tsv``, ``*.test.tsv``: label, id1, id2,
  text1, text2 on each line, tab-separated, no quoting), or one such ``.tsv`` file.

Classes of a folder layout are numbered in the sorted order of their folder names (IMDb: neg 0, pos 1).
A ``LayoutError`` says what is wrong with a source and how to fix it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

CIFAR_RECORD = 1 + 32 * 32 * 3  # a label byte, then 1024 red, 1024 green and 1024 blue bytes
CIFAR_CLASSES = 10
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
IMAGE_MODES = ("L", "RGB")
TEXT_SUFFIXES = (".txt",)
NPZ_KEYS = (("x_train", "y_train", "x_test", "y_test"), ("images", "labels"), ("x", "y"))
AAN_SPLITS = {"train": "train", "eval": "valid", "test": "test"}
TSV_FIELDS = ("label", "id1", "id2", "text1", "text2")


class LayoutError(Exception):
    """A data source's files are not what it reads: ``message`` and an actionable ``hint``."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message, self.hint = message, hint


@dataclass(frozen=True)
class Layout:
    """A source's files per split (``train``, and ``valid``/``test`` when the source has them).

    ``kind``: cifar | images | npz | imdb | records | aan | tsv. ``splits[name]`` lists the files of that
    split; for a folder layout ``labelled[name]`` gives (file, class index) pairs instead. ``classes`` names
    the classes of a folder layout, in label order."""

    kind: str
    root: Path
    splits: dict[str, tuple[Path, ...]] = field(default_factory=dict)
    labelled: dict[str, tuple[tuple[Path, int], ...]] = field(default_factory=dict)
    classes: tuple[str, ...] = ()

    @property
    def has_test(self) -> bool:
        return "test" in self.splits or "test" in self.labelled


def _dirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _files(path: Path, suffixes: tuple[str, ...]) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in suffixes)


def _class_folders(train: Path, test: Path | None, suffixes: tuple[str, ...], what: str
                   ) -> tuple[tuple[str, ...], dict[str, tuple[tuple[Path, int], ...]]]:
    """Classes and labelled files of ``train/<class>/*`` (and ``test/<class>/*``): the class folders are the
    sub-folders of ``train`` (those both splits have, when there is a test split), numbered in sorted order."""
    train_classes = {c.name: c for c in _dirs(train)}
    test_classes = {c.name: c for c in _dirs(test)} if test is not None else None
    names = sorted(train_classes if test_classes is None else set(train_classes) & set(test_classes))
    if not names:
        where = f"'{train}'" + (f" and '{test}'" if test is not None else "")
        raise LayoutError(f"{where} hold{'s' * (test is None)} no folder of {what} per class"
                          + (" that both splits have" if test is not None and (train_classes or test_classes) else ""),
                          f"put each class's {what} in a folder named after the class, e.g. {train}/<class>/...")
    labelled = {}
    for split, classes, d in (("train", train_classes, train), ("test", test_classes, test)):
        if classes is None:
            continue
        labelled[split] = tuple((f, i) for i, name in enumerate(names) for f in _files(classes[name], suffixes))
        if not labelled[split]:
            raise LayoutError(f"the {'training' if split == 'train' else split} split '{d}' has no {what} (an empty split)",
                              f"put its {what} in a folder per class, {d}/<class>/...")
    return tuple(names), labelled


# ---- pixels() ----------------------------------------------------------------------------------------------
def pixel_layout(path: Path) -> Layout:
    """The layout of a ``pixels()`` source (``path`` exists)."""
    if path.is_file():
        if path.suffix.lower() != ".npz":
            raise LayoutError(f"expected a directory (CIFAR-10 batches or an image folder) or an .npz file, "
                              f"not '{path.name}'", "point it at cifar-10-batches-bin/, an image folder or an .npz")
        return Layout("npz", path, {"all": (path,)})
    for root in (path, path / "cifar-10-batches-bin"):
        if root.is_dir() and (any(root.glob("data_batch_*.bin")) or (root / "test_batch.bin").is_file()):
            return _cifar_layout(root)
    if (path / "train").is_dir():
        test = path / "test" if (path / "test").is_dir() else None
        classes, labelled = _class_folders(path / "train", test, IMAGE_SUFFIXES, "images")
        return Layout("images", path, labelled=labelled, classes=classes)
    if any(_files(c, IMAGE_SUFFIXES) for c in _dirs(path)):  # DIR/<class>/*
        classes, labelled = _class_folders(path, None, IMAGE_SUFFIXES, "images")
        return Layout("images", path, labelled=labelled, classes=classes)
    raise LayoutError(f"'{path}' holds neither CIFAR-10's binary batches (data_batch_1.bin ... test_batch.bin), "
                      "nor a folder of images per class",
                      "extract cifar-10-binary.tar.gz there, or lay images out as DIR/<class>/*.png "
                      "(or DIR/train/<class>/..., DIR/test/<class>/...)")


def _cifar_layout(root: Path) -> Layout:
    def number(p: Path) -> int:
        m = re.search(r"(\d+)", p.stem)
        return int(m.group(1)) if m else 0

    train = tuple(sorted(root.glob("data_batch_*.bin"), key=number))
    test = (root / "test_batch.bin",) if (root / "test_batch.bin").is_file() else ()
    if not train:
        raise LayoutError(f"'{root}' has a test batch but no training batches (data_batch_1.bin ...)",
                          "extract the whole cifar-10-binary.tar.gz")
    for f in (*train, *test):
        size = f.stat().st_size
        if size == 0:
            raise LayoutError(f"CIFAR-10 batch '{f.name}' is empty (its split has no images)",
                              "extract cifar-10-binary.tar.gz again")
        if size % CIFAR_RECORD:
            raise LayoutError(f"CIFAR-10 batch '{f.name}' has {size:,} bytes, not a whole number of images of "
                              f"{CIFAR_RECORD} bytes (a label byte and 32x32x3 pixel bytes)",
                              "the file is truncated or not a CIFAR-10 binary batch: extract cifar-10-binary.tar.gz "
                              "again (the python and matlab versions are not read)")
    return Layout("cifar", root, {"train": train, **({"test": test} if test else {})})


def npz_arrays(path: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """{name: (shape, dtype)} of the arrays of an .npz, from their headers (nothing else is read, nothing is
    unpickled)."""
    import zipfile

    import numpy as np
    from numpy.lib import format as npy

    out = {}
    try:
        with zipfile.ZipFile(path) as z:
            for name in z.namelist():
                if not name.endswith(".npy"):
                    continue
                with z.open(name) as f:
                    version = npy.read_magic(f)
                    shape, _, dtype = (npy.read_array_header_1_0(f) if version == (1, 0)
                                       else npy.read_array_header_2_0(f))
                out[name[:-4]] = (tuple(shape), np.dtype(dtype).str)
    except (zipfile.BadZipFile, ValueError, OSError) as err:
        raise LayoutError(f"cannot read '{path.name}' as an .npz of arrays: {err}",
                          "write it with numpy.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)") from None
    return out


def npz_keys(path: Path) -> tuple[tuple[str, str], ...]:
    """The (images, labels) array names of each split an .npz holds: ((x_train, y_train), (x_test, y_test)),
    ((images, labels),) or ((x, y),); refuses arrays of the wrong shape or kind."""
    arrays = npz_arrays(path)
    for names in NPZ_KEYS:
        if all(n in arrays for n in names[:2]):
            pairs = tuple(zip(names[::2], names[1::2]))
            pairs = tuple(p for p in pairs if p[0] in arrays or p[1] in arrays)
            break
    else:
        raise LayoutError(f"'{path.name}' holds arrays {', '.join(sorted(arrays)) or '(none)'}, not images and labels",
                          "name them x_train, y_train (and x_test, y_test), or images and labels")
    for x, y in pairs:
        if x not in arrays or y not in arrays:
            raise LayoutError(f"'{path.name}' has '{x if x in arrays else y}' without '{y if x in arrays else x}'",
                              "give each split's images and labels")
        (xs, xt), (ys, yt) = arrays[x], arrays[y]
        if xt not in ("|u1", "<u1", ">u1"):
            raise LayoutError(f"'{path.name}': '{x}' holds {xt} values, not bytes (uint8 pixel values 0-255)",
                              "save the images as uint8")
        if len(xs) not in (3, 4) or (len(xs) == 4 and xs[3] not in (1, 3)):
            raise LayoutError(f"'{path.name}': '{x}' has shape {xs}, not (N, height, width) or (N, height, width, 1 or 3)",
                              "save the images as one array of N images")
        if ys != (xs[0],) or yt[1:] not in ("i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8"):
            raise LayoutError(f"'{path.name}': '{y}' has shape {ys} and type {yt}, not ({xs[0]},) integers (one class per image)",
                              "save one integer label per image")
        if xs[0] == 0:
            raise LayoutError(f"'{path.name}': '{x}' holds no images (an empty split)", "give each split images")
    return pairs


def check_image(path: Path, mode: str, size: tuple[int, int] | None) -> tuple[int, int]:
    """(width, height) of an image file, refused when its mode cannot give ``mode`` (gray | rgb) pixels or
    its size differs from ``size`` (the first image's)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image_mode, image_size = image.mode, image.size
    except (UnidentifiedImageError, OSError) as err:
        raise LayoutError(f"cannot read the image '{path}': {err}", "remove it or save it again as PNG") from None
    if image_mode not in IMAGE_MODES:
        raise LayoutError(f"the image '{path}' has mode {image_mode}, not L (gray) or RGB",
                          "convert it, e.g. Image.open(p).convert('RGB').save(p)")
    if mode == "rgb" and image_mode != "RGB":
        raise LayoutError(f"the image '{path}' is grayscale (mode L), but mode=rgb reads three colours per pixel",
                          "use mode=gray, or convert the images to RGB")
    if size is not None and image_size != size:
        raise LayoutError(f"the image '{path}' is {image_size[0]}x{image_size[1]}, but the first image is "
                          f"{size[0]}x{size[1]}: every image is one sequence of the same length",
                          "resize the images to one size")
    return image_size


# ---- bytetext() --------------------------------------------------------------------------------------------
def text_layout(path: Path) -> Layout:
    """The layout of a local ``bytetext()`` source (``path`` exists): a records file or an IMDb-style folder."""
    if path.is_file():
        if path.suffix.lower() not in (".jsonl", ".csv"):
            raise LayoutError(f"expected a folder of texts per class (IMDb's aclImdb/) or a .jsonl or .csv "
                              f"file, not '{path.name}'", "write one record per line: {\"text\": ..., \"label\": 0}")
        return Layout("records", path, {"all": (path,)})
    root = path / "aclImdb" if (path / "aclImdb").is_dir() and not (path / "train").is_dir() else path
    if (root / "train").is_dir():
        test = root / "test" if (root / "test").is_dir() else None
        classes, labelled = _class_folders(root / "train", test, TEXT_SUFFIXES, "texts (.txt)")
        return Layout("imdb", root, labelled=labelled, classes=classes)
    classes, labelled = _class_folders(root, None, TEXT_SUFFIXES, "texts (.txt)")
    return Layout("imdb", root, labelled=labelled, classes=classes)


# ---- retrieval() -------------------------------------------------------------------------------------------
def retrieval_layout(path: Path) -> Layout:
    """The layout of a ``retrieval()`` source (``path`` exists): LRA's three AAN files or one .tsv file."""
    if path.is_file():
        if path.suffix.lower() != ".tsv":
            raise LayoutError(f"expected LRA's .tsv files (label, id1, id2, text1, text2), not '{path.name}'",
                              "point it at the directory of new_aan_pairs.{train,eval,test}.tsv, or at one .tsv")
        return Layout("tsv", path, {"all": (path,)})
    root = path
    for candidate in (path, path / "tsv_data", path / "lra_release" / "tsv_data"):
        if candidate.is_dir() and any(candidate.glob("*.train.tsv")):
            root = candidate
            break
    splits = {}
    for suffix, split in AAN_SPLITS.items():
        found = sorted(root.glob(f"*.{suffix}.tsv"))
        if len(found) > 1:
            raise LayoutError(f"'{root}' holds several *.{suffix}.tsv files ({', '.join(f.name for f in found)})",
                              "keep one set of AAN files per directory")
        if found:
            splits[split] = (found[0],)
    if "train" not in splits:
        raise LayoutError(f"'{root}' holds no *.train.tsv file (LRA's AAN data: new_aan_pairs.train.tsv, .eval.tsv, "
                          ".test.tsv)", "extract lra_release's tsv_data there, or point retrieval() at one .tsv file")
    for split, (f,) in splits.items():
        if f.stat().st_size == 0:
            raise LayoutError(f"'{f.name}' is empty: the {split} split has no pairs", "give every split pairs")
    return Layout("aan", root, splits)


def tsv_pair(line: str, number: int, name: str, classes: int | None = None) -> tuple[int, str, str]:
    """(label, text1, text2) of one line of an AAN file; LayoutError when it is not label, id1, id2, text1, text2
    or the label is not a class (of ``classes``)."""
    fields = line.rstrip("\r\n").split("\t")
    if len(fields) != len(TSV_FIELDS):
        raise LayoutError(f"line {number} of '{name}' has {len(fields)} tab-separated fields, not 5 "
                          "(label, id1, id2, text1, text2)", "write one pair per line, fields separated by tabs")
    try:
        value = float(fields[0])
    except ValueError:
        raise LayoutError(f"line {number} of '{name}' has label {fields[0]!r}, not a class number",
                          "labels are 0 (no citation) or 1 (citation)") from None
    if not value.is_integer() or value < 0 or (classes is not None and value >= classes):
        raise LayoutError(f"line {number} of '{name}' has label {fields[0]}, outside the classes 0..{(classes or 2) - 1}",
                          "labels are whole numbers 0..n-1 for match(n)")
    if not fields[3] or not fields[4]:
        raise LayoutError(f"line {number} of '{name}' has an empty document", "every pair needs two documents")
    return int(value), fields[3], fields[4]

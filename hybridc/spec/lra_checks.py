"""``validate``'s checks of the Long Range Arena data sources (``pathfinder``, ``pixels``, ``bytetext``,
``retrieval``): the task and vocabulary they need, their files' layout (``data_layouts``), the first records or
images of every split, the sequence lengths against the components' limits. Torch-free; numpy and Pillow are
imported only for ``.npz`` files and images."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import Diagnostic
from .data_layouts import (CIFAR_CLASSES, Layout, LayoutError, check_image, npz_arrays, npz_keys, pixel_layout,
                           retrieval_layout, text_layout, tsv_pair)
from .signatures import PATHFINDER_RESOLUTIONS

LRA_SOURCES = ("pathfinder", "pixels", "bytetext", "retrieval")
VOCAB_NEEDED = {"pathfinder": 256, "pixels": 256, "bytetext": 257, "retrieval": 257}  # bytes 0-255, pad 256
FIRST_IMAGES = 20  # images of each split opened at validate time (every image is checked as it loads)
FIRST_PAIRS = 100  # lines of each AAN file read at validate time


def check_lra(data, path: Path | None, task, loc, vocab: int | None, limits, root: Path | None) -> list[Diagnostic]:
    """The problems of one LRA data source; ``path`` is its local file or directory (None: on the Hub or
    missing, reported elsewhere), ``task`` None when the task itself has an error."""
    name = data.name
    problems: list[Diagnostic] = []
    if vocab is not None and vocab < VOCAB_NEEDED[name]:
        top = VOCAB_NEEDED[name] - 1
        problems.append(Diagnostic(loc, f"{name}() uses token ids 0-{top} ({'pixel values' if top == 255 else 'bytes and padding'}), "
                                        f"but the hybrid's vocabulary has {vocab}",
                                   f"give the components vocab_size: {top + 1} or more"))
    if name == "pathfinder":
        return problems + _pathfinder(data, task, loc, limits)
    if path is None or not path.exists():
        return problems
    try:
        if name == "pixels":
            problems += _pixels(data, path, task, loc, limits, root)
        elif name == "bytetext":
            problems += _bytetext(data, path, task, loc, root)
        else:
            problems += _retrieval(data, path, task, loc, root)
    except LayoutError as err:
        problems.append(Diagnostic(loc, f"{name}(): {err.message}", err.hint))
    except OSError as err:
        problems.append(Diagnostic(loc, f"{name}(): cannot read '{err.filename or path}': {err.strerror or err}",
                                   "check the files and their permissions"))
    return problems


def sequence_length(data) -> int | None:
    """The tokens of one sequence of an LRA source when the spec alone fixes it (a document's, for retrieval)."""
    if data.name == "pathfinder":
        resolution = data.arg("resolution")
        return resolution * resolution if isinstance(resolution, int) else None
    if data.name in ("bytetext", "retrieval"):
        length = data.arg("length")
        return length if isinstance(length, int) else None
    return None


def _longer(data, length: int, loc, limits) -> list[Diagnostic]:
    return [Diagnostic(loc, f"{data.name}() sequences of {length} tokens are longer than '{name}' allows ({limit})",
                       f"raise its max_length to at least {length}") for limit, name in limits if length > limit]


def _classes(data, found: int, what: str, task, loc) -> list[Diagnostic]:
    if task is None or task.num_classes is None or found <= task.num_classes:
        return []
    return [Diagnostic(loc, f"{data.name}() has {found} classes ({what}), but the task is {task}",
                       f"write task: {task.kind}({found})")]


def _pathfinder(data, task, loc, limits) -> list[Diagnostic]:
    problems = []
    resolution = data.arg("resolution")
    if resolution not in PATHFINDER_RESOLUTIONS:
        problems.append(Diagnostic(loc, f"pathfinder() draws at resolution 32, 64 or 128, not {resolution}",
                                   "resolution=32 (LRA Pathfinder) or resolution=128 (Path-X)"))
    elif task is not None and task.num_classes != 2:
        problems.append(Diagnostic(loc, f"pathfinder() labels are 0 and 1, but the task is {task}", "use task: classify(2)"))
    if resolution in PATHFINDER_RESOLUTIONS:
        problems += _longer(data, resolution * resolution, loc, limits)
    return problems


def _confined(layout: Layout, root: Path | None) -> None:
    """Every file of ``layout`` resolves inside ``root`` (links included)."""
    if root is None:
        return
    top = os.path.realpath(root)
    files = [f for files in layout.splits.values() for f in files]
    files += [f for pairs in layout.labelled.values() for f, _ in pairs]
    for f in files:
        real = os.path.realpath(f)
        if os.path.commonpath([real, top]) != top:
            raise LayoutError(f"the data file '{f}' escapes the root {top} (it resolves to {real})",
                              "data files must stay inside the root given with --root")


def _pixels(data, path: Path, task, loc, limits, root) -> list[Diagnostic]:
    layout = pixel_layout(path)
    _confined(layout, root)
    mode = data.arg("mode")
    channels = 3 if mode == "rgb" else 1
    if layout.kind == "cifar":
        return _classes(data, CIFAR_CLASSES, "CIFAR-10", task, loc) + _longer(data, 1024 * channels, loc, limits)
    if layout.kind == "images":
        problems = _classes(data, len(layout.classes), f"folders {', '.join(layout.classes[:5])}"
                            + (", ..." if len(layout.classes) > 5 else ""), task, loc)
        size = None
        for split, pairs in layout.labelled.items():
            if not pairs:
                raise LayoutError(f"the {split} split of '{path}' has no images", "give every split images")
            for f, _ in pairs[:FIRST_IMAGES]:
                size = check_image(f, mode, size)
        return problems + _longer(data, size[0] * size[1] * channels, loc, limits)
    import numpy as np

    problems = []
    arrays = npz_arrays(path)
    for x, y in npz_keys(path):
        shape = arrays[x][0]
        if mode == "rgb" and (len(shape) == 3 or shape[3] == 1):
            raise LayoutError(f"'{path.name}': '{x}' holds grayscale images {shape}, but mode=rgb reads three colours",
                              "use mode=gray")
        with np.load(path, allow_pickle=False) as z:
            labels = z[y]
        if labels.size and (labels.min() < 0 or (task is not None and task.num_classes is not None
                                                  and labels.max() >= task.num_classes)):
            bad = int(labels.min()) if labels.min() < 0 else int(labels.max())
            problems.append(Diagnostic(loc, f"pixels(): '{path.name}': '{y}' has label {bad}, outside 0..{task.num_classes - 1} "
                                            f"for {task}", "labels are class numbers 0..n-1 of classify(n)"))
            return problems
        problems += _longer(data, shape[1] * shape[2] * channels, loc, limits)
    return problems


def _bytetext(data, path: Path, task, loc, root) -> list[Diagnostic]:
    layout = text_layout(path)
    _confined(layout, root)
    if layout.kind == "records":
        return []  # checked as classify() records are (the caller)
    for split, pairs in layout.labelled.items():
        if not pairs:
            raise LayoutError(f"the {split} split of '{path}' has no texts", "give every split texts")
    return _classes(data, len(layout.classes), f"folders {', '.join(layout.classes)}", task, loc)


def _retrieval(data, path: Path, task, loc, root) -> list[Diagnostic]:
    layout = retrieval_layout(path)
    _confined(layout, root)
    n = task.num_classes if task is not None else None
    for (f,) in layout.splits.values():
        with open(f, "rb") as handle:
            for number, line in enumerate(handle, start=1):
                if number > FIRST_PAIRS:
                    break
                tsv_pair(line.decode("utf-8", errors="surrogateescape"), number, f.name, n)
    return []


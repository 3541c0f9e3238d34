"""``pathfinder(resolution=32, difficulty=hard, examples=4096, valid=0.1, test=0.1)``: LRA's Pathfinder, for
``classify(2)``.

Each example is a grayscale image drawn as the generator of Linsley et al. (2018) draws it for Long Range
Arena (Tay et al. 2021), flattened row-major into ``resolution``^2 pixel tokens 0-255 (vocabulary 256, no
padding). The label says whether the two markers (small discs) lie at the two ends of one path:

- two *target* paths ("snakes") grow from two seed dashes ``seed_distance`` apart, each a chain of
  ``contour length`` short dashes ("paddles", ``paddle_length`` long, ``thickness`` wide): every next dash
  starts a gap of ``2 margin`` beyond the last one, its direction drawn among the points of a circle with
  weight cos(min(turn x continuity, 90 deg))^2, never where it would come within ``margin`` of another dash
  (the dash before it in its own path excepted);
- *distractor* paths of ``contour length // 3`` dashes, ``distractors // (contour length // 3)`` of them,
  grown the same way anywhere free (a distractor that cannot be completed is dropped);
- one marker on the first end of a target path, the other on the last end of the same path (label 1) or
  of the other target path (label 0).

``difficulty`` is LRA's split: the contour length 6 (``easy``, the generator's ``curv_baseline``), 9
(``intermediate``) or 14 (``hard``, the one LRA reports). The styles per resolution are LRA's settings of
the generator (``STYLES``; 128 is Path-X). Dashes and markers are anti-aliased by their exact coverage of
each pixel (the generator draws at twice the size and resizes).

Example ``k`` is drawn from its own random stream seeded by (seed, resolution, difficulty, k), so the first
examples do not depend on ``examples``; its label is ``k % 2`` (balanced). ``draw_examples`` returns each
drawing with its record (every dash of every path, the markers and the paths they sit on), which the
tests check the labels against.
"""

from __future__ import annotations

import math
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .context import Examples, SourceContext
from .dataset import Split
from .sampling import derive_seed

DIFFICULTIES = {"easy": 6, "intermediate": 9, "hard": 14}
VOCAB_SIZE = 256  # pixel values
MAX_TARGET_TRIES = 10_000  # target path pairs drawn before giving up on an image (about 30 are needed at 32 hard)
PROGRESS_FROM = 5000  # examples from which drawing them shows a progress bar (on a terminal)
PADDLE_TRIES = 3  # samples of a dash's direction before its path fails (the generator's max_paddle_retrial + 1)
DISTRACTOR_TRIES = 5  # attempts at one distractor path (the generator's max_distractor_contour_retrial + 1)


@dataclass(frozen=True)
class Style:
    """The generator's settings at one resolution (lengths in pixels)."""

    size: int
    paddle_length: float
    margins: tuple[int, ...]  # one is drawn per image
    thickness: float
    marker_radius: float
    seed_distance: float
    continuity: float
    distractors: int  # distractor dashes: distractors // distractor length paths
    contrast: float  # dash intensity (1 = white), clipped to 1
    padding: int = 1


STYLES = {
    32: Style(32, 2.0, (1,), 0.5, 1.5, 7.0, 1.0, 20, 1.5),
    64: Style(64, 5.0, (1,), 1.0, 2.5, 12.0, 1.8, 22, 0.8),
    128: Style(128, 5.0, (2, 3), 1.5, 3.0, 20.0, 1.8, 35, 0.9),
}

Point = tuple[float, float]  # (y, x), pixel (i, j) covers [i, i + 1) x [j, j + 1)
Dash = tuple[Point, Point]  # first end, last end (in the path's direction)


@dataclass(frozen=True)
class Drawing:
    """One image and how it was drawn.

    ``paths``: every path as its dashes in order, the two target paths first; ``markers``: the two marker
    centres; ``marker_paths``: the index of the path each marker ends (the first marker is on its first
    end, the second on its last end)."""

    image: np.ndarray  # (size, size) uint8
    label: int
    paths: tuple[tuple[Dash, ...], ...]
    markers: tuple[Point, Point]
    marker_paths: tuple[int, int]
    margin: int


GRID = 2  # clearance cells per pixel (the generator checks overlaps at twice the resolution too)


def _distances(points: np.ndarray, a: Point, b: Point) -> np.ndarray:
    """(P,) distances of points (P, 2) to segment ab."""
    a_, d = np.asarray(a), np.asarray(b) - np.asarray(a)
    t = np.clip(((points - a_) @ d) / max(float(d @ d), 1e-12), 0.0, 1.0)
    return np.linalg.norm(points - (a_ + t[:, None] * d), axis=-1)


@dataclass
class _Path:
    dashes: list[Dash]
    zones: list[np.ndarray]  # per dash: the flat clearance cells it holds
    direction: int  # index of the last dash's direction among the candidates


class _Geometry:
    """What every image of one style and margin shares: candidate directions, the weight of each turn, and
    the clearance zone of a dash in each direction at each sub-cell offset (computed when first needed)."""

    SUB = 4  # sub-cell positions per cell at which zones are computed

    def __init__(self, style: Style, margin: int):
        self.style, self.margin = style, margin
        self.clearance = 2.0 * margin  # dashes that do not follow each other in a path stay this far apart
        self.low = style.padding + style.thickness / 2  # every dash stays inside the padding
        self.high = style.size - self.low
        self.step = style.paddle_length + margin  # a dash's direction is drawn around a point this far from its end
        count = max(8, int(math.ceil(2 * math.pi * self.step)))  # one direction per pixel of that circle (as the generator)
        angles = np.arange(count) * (2 * math.pi / count)
        self.units = [(math.sin(a), math.cos(a)) for a in angles]
        self.heads = self.step * GRID * np.stack([np.sin(angles), np.cos(angles)], -1)  # (K, 2) in cells
        turns = np.minimum(np.arange(count), count - np.arange(count)) * (2 * math.pi / count)
        turn_weights = np.cos(np.minimum(turns * style.continuity, math.pi / 2)) ** 2
        turn_weights[turn_weights < 1e-12] = 0.0
        # row d: the weight of each candidate direction after a dash in direction d
        self.turn_weights = np.stack([np.roll(turn_weights, d) for d in range(count)])
        samples = int(math.ceil(style.paddle_length * GRID)) + 1
        self.along = [k / (samples - 1) for k in range(samples)]  # points of a dash whose cells are checked
        self.pad = int(math.ceil((self.clearance + style.paddle_length) * GRID)) + 2  # cells around the image
        self.width = style.size * GRID + 2 * self.pad
        centres = (np.arange(self.width) - self.pad + 0.5) / GRID
        inside = (centres >= self.low) & (centres <= self.high)
        self.empty = (~(inside[:, None] & inside[None, :])).astype(np.int16)  # outside the drawable area: held
        self._zones: dict[tuple[int, int, int], np.ndarray] = {}

    def cell(self, p: Point) -> int:
        """The flat index of the cell holding point p (always inside the padded grid for points near the image)."""
        return (int(math.floor(p[0] * GRID)) + self.pad) * self.width + int(math.floor(p[1] * GRID)) + self.pad

    def zone(self, a: Point, direction: int) -> np.ndarray:
        """The flat cells whose centres lie within ``clearance`` of the dash from ``a`` in ``direction``."""
        fy, fx = a[0] * GRID, a[1] * GRID
        iy, ix = math.floor(fy), math.floor(fx)
        key = (direction, int((fy - iy) * self.SUB), int((fx - ix) * self.SUB))
        offsets = self._zones.get(key)
        if offsets is None:
            sy, sx = (key[1] + 0.5) / self.SUB / GRID, (key[2] + 0.5) / self.SUB / GRID  # a, relative to its cell
            uy, ux = self.units[direction]
            length = self.style.paddle_length
            b = (sy + length * uy, sx + length * ux)
            r = int(math.ceil((self.clearance + length) * GRID)) + 1
            ii, jj = np.meshgrid(np.arange(-r, r + 1), np.arange(-r, r + 1), indexing="ij")
            centres = np.stack([ii.ravel(), jj.ravel()], -1).astype(float) / GRID + 0.5 / GRID
            near = _distances(centres, (sy, sx), b) <= self.clearance
            offsets = (ii.ravel() * self.width + jj.ravel())[near]
            self._zones[key] = offsets
        return offsets + ((iy + self.pad) * self.width + ix + self.pad)


class _Canvas:
    """What has been drawn: ``held`` counts, per clearance cell, the dashes within ``clearance`` of it (cells
    outside the drawable area count once), so a new dash fits where every cell it passes is 0."""

    def __init__(self, geometry: _Geometry, rng: random.Random):
        self.geometry, self.rng = geometry, rng
        self.style, self.margin = geometry.style, geometry.margin
        self.units, self.step = geometry.units, geometry.step
        self.low, self.high = geometry.low, geometry.high
        self.held = geometry.empty.copy()
        self.flat = self.held.ravel()

    def fits(self, a: Point, b: Point) -> bool:
        held, cell = self.flat, self.geometry.cell
        for s in self.geometry.along:
            if held[cell((a[0] + s * (b[0] - a[0]), a[1] + s * (b[1] - a[1])))]:
                return False
        return True

    def hold(self, zone: np.ndarray, sign: int = 1) -> None:
        self.flat[zone] += sign

    def seed(self, tail: Point, direction: int) -> _Path | None:
        """A path's first dash from ``tail`` in candidate direction ``direction``, or None when it does not fit."""
        uy, ux = self.units[direction]
        length = self.style.paddle_length
        head = (tail[0] + length * uy, tail[1] + length * ux)
        if not self.fits(tail, head):
            return None
        zone = self.geometry.zone(tail, direction)
        self.hold(zone)
        return _Path([(tail, head)], [zone], direction)

    def extend(self, path: _Path) -> bool:
        """Add one dash to ``path`` (see the module docstring); False when none fits (the path is unchanged)."""
        m, step, count = self.margin, self.step, len(self.units)
        end = path.dashes[-1][1]
        ly, lx = self.units[path.direction]
        pivot = (end[0] + m * ly, end[1] + m * lx)
        self.hold(path.zones[-1], -1)  # the dash it follows does not count against it
        geometry = self.geometry
        heads = np.floor(geometry.heads + (pivot[0] * GRID, pivot[1] * GRID)).astype(np.int64) + geometry.pad
        free = self.flat[heads[:, 0] * geometry.width + heads[:, 1]] == 0
        cumulative = np.cumsum(geometry.turn_weights[path.direction] * free)
        chosen = None
        if cumulative[-1] >= 1e-4:
            for _ in range(PADDLE_TRIES):
                k = min(int(np.searchsorted(cumulative, self.rng.random() * cumulative[-1], side="right")), count - 1)
                uy, ux = self.units[k]
                a = (pivot[0] + m * uy, pivot[1] + m * ux)
                b = (pivot[0] + step * uy, pivot[1] + step * ux)
                if self.fits(a, b):
                    chosen = k, a, b
                    break
        self.hold(path.zones[-1])
        if chosen is None:
            return False
        k, a, b = chosen
        zone = self.geometry.zone(a, k)
        self.hold(zone)
        path.dashes.append((a, b))
        path.zones.append(zone)
        path.direction = k
        return True

    def remove(self, path: _Path) -> None:
        for zone in path.zones:
            self.hold(zone, -1)


def _targets(canvas: _Canvas, contour: int) -> tuple[_Path, _Path] | None:
    """The two target paths, grown a dash at a time each in turn, or None (the caller starts again)."""
    rng, style = canvas.rng, canvas.style
    n, s, count = style.size, style.seed_distance, len(canvas.units)
    low, high = 2 * s, n - 2 * s  # the first path's tail is at least two seed distances from the border
    if high <= low:
        low, high = n / 2 - 1, n / 2 + 1
    first = canvas.seed((rng.uniform(low, high), rng.uniform(low, high)), rng.randrange(count))
    if first is None:
        return None
    angle = rng.uniform(0, 2 * math.pi)
    tail = (first.dashes[0][0][0] + s * math.sin(angle), first.dashes[0][0][1] + s * math.cos(angle))
    second = canvas.seed(tail, rng.randrange(count))
    if second is None:
        return None
    for _ in range(contour - 1):
        for path in (first, second):
            if not canvas.extend(path):
                return None
    return first, second


def _distractor(canvas: _Canvas, length: int) -> _Path | None:
    rng = canvas.rng
    tail = (rng.uniform(canvas.low, canvas.high), rng.uniform(canvas.low, canvas.high))
    path = canvas.seed(tail, rng.randrange(len(canvas.units)))
    if path is None:
        return None
    for _ in range(length - 1):
        if not canvas.extend(path):
            canvas.remove(path)
            return None
    return path


def _ink(style: Style, paths: list[_Path]) -> np.ndarray:
    """(size, size) float32 in [0, 1]: every dash's stroke, each pixel covered as far as its centre lies within
    thickness / 2 of a dash (anti-aliased over one pixel), times the contrast, at most 1."""
    n = style.size
    dashes = np.array([dash for path in paths for dash in path.dashes])  # (D, 2, 2)
    a, d = dashes[:, 0], dashes[:, 1] - dashes[:, 0]
    centres = (np.stack(np.meshgrid(np.arange(n), np.arange(n), indexing="ij"), -1).reshape(-1, 2) + 0.5)
    nearest = np.full(n * n, np.inf)
    for k in range(0, len(dashes), 64):  # (pixels, 64) at a time
        rel = centres[:, None, :] - a[None, k:k + 64]
        t = np.clip((rel * d[None, k:k + 64]).sum(-1) / (d[k:k + 64] ** 2).sum(-1), 0.0, 1.0)
        dist = np.linalg.norm(rel - t[..., None] * d[None, k:k + 64], axis=-1).min(-1)
        nearest = np.minimum(nearest, dist)
    value = np.clip(style.thickness / 2 + 0.5 - nearest, 0.0, 1.0) * style.contrast
    return np.minimum(value, 1.0).astype(np.float32).reshape(n, n)


def _disc(ink: np.ndarray, centre: Point, radius: float) -> None:
    n = ink.shape[0]
    ys = np.arange(max(0, int(centre[0] - radius - 1)), min(n, int(centre[0] + radius + 2)))
    xs = np.arange(max(0, int(centre[1] - radius - 1)), min(n, int(centre[1] + radius + 2)))
    dist = np.hypot(ys[:, None] + 0.5 - centre[0], xs[None, :] + 0.5 - centre[1])
    block = np.ix_(ys, xs)
    ink[block] = np.maximum(ink[block], np.clip(radius + 0.5 - dist, 0.0, 1.0).astype(np.float32))


def draw(style: Style, contour: int, label: int, rng: random.Random, geometries: dict[int, _Geometry]) -> Drawing:
    """One Pathfinder image with target paths of ``contour`` dashes and the given label (``geometries``: a
    ``_Geometry`` of the style per margin)."""
    geometry = geometries[style.margins[rng.randrange(len(style.margins))]]
    margin = geometry.margin
    for _ in range(MAX_TARGET_TRIES):
        canvas = _Canvas(geometry, rng)
        targets = _targets(canvas, contour)
        if targets is not None:
            break
    else:  # pragma: no cover - the styles leave ample room
        raise RuntimeError(f"could not draw two paths of {contour} dashes at {style.size}x{style.size}")
    paths = list(targets)
    distractor_length = max(1, contour // 3)
    for _ in range(style.distractors // distractor_length):
        for _ in range(DISTRACTOR_TRIES):
            path = _distractor(canvas, distractor_length)
            if path is not None:
                paths.append(path)
                break
    ink = _ink(style, paths)
    origin = rng.randrange(2)
    terminal = origin if label == 1 else 1 - origin
    markers = (paths[origin].dashes[0][0], paths[terminal].dashes[-1][1])
    for centre in markers:
        _disc(ink, centre, style.marker_radius)
    image = np.round(ink * 255.0).astype(np.uint8)
    record = tuple(tuple(p.dashes) for p in paths)
    return Drawing(image, label, record, markers, (origin, terminal), margin)


def draw_examples(seed: int, resolution: int, difficulty: str, start: int, stop: int,
                  advance: Callable[[], None] | None = None) -> list[Drawing]:
    """Examples ``start`` .. ``stop - 1`` of the Pathfinder data of ``seed`` (see the module docstring);
    ``advance`` is called after each."""
    style, contour = STYLES[resolution], DIFFICULTIES[difficulty]
    geometries = {m: _Geometry(style, m) for m in style.margins}
    out = []
    for k in range(start, stop):
        rng = random.Random(derive_seed(seed, "pathfinder", resolution, difficulty, k))
        out.append(draw(style, contour, k % 2, rng, geometries))
        if advance is not None:
            advance()
    return out


def build_pathfinder(ctx: SourceContext) -> Examples:
    """input_ids (N, resolution^2) long pixel values 0-255, row-major; labels (N,) 0/1, half of each. Thousands of
    images take a while (about 10 ms each at 32 easy, 25 ms hard): a progress bar shows on a terminal."""
    resolution, difficulty, count = int(ctx.arg("resolution")), str(ctx.arg("difficulty")), int(ctx.arg("examples"))
    if count >= PROGRESS_FROM and sys.stderr.isatty():
        from rich.progress import Progress

        with Progress(transient=True) as bar:
            task = bar.add_task(f"drawing {count:,} Pathfinder images", total=count)
            drawings = draw_examples(ctx.seed, resolution, difficulty, 0, count, lambda: bar.advance(task))
    else:
        drawings = draw_examples(ctx.seed, resolution, difficulty, 0, count)
    pixels = np.stack([d.image.reshape(-1) for d in drawings])
    ids = torch.from_numpy(pixels.astype(np.int64))
    labels = torch.tensor([d.label for d in drawings], dtype=torch.long)
    return Examples(Split(ids, labels), "images")

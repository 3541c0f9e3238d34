"""Pathfinder: each label agrees with the drawing's own record of its paths (the markers sit on the two ends of
one recorded path, or on ends of the two target paths), the picture is exactly the recorded dashes and markers,
the paths keep the generator's rules (lengths, gaps, turns, clearance), labels are balanced, and a seed gives
the same images."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hybridc.data.pathfinder import DIFFICULTIES, STYLES, draw_examples
from tests.data.conftest import make
from hybridc.spec.model import Task


def _segment_distance(p: np.ndarray, a, b) -> np.ndarray:
    """Distances of points p (P, 2) to segment ab, computed directly."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    d = b - a
    t = np.clip(((p - a) @ d) / (d @ d), 0, 1)
    return np.hypot(*(p - (a + t[:, None] * d)).T)


def which_end(point, paths) -> tuple[int, str] | None:
    """(path, 'first' | 'last') of the path end at ``point``, from the record alone."""
    for i, path in enumerate(paths):
        if math.dist(point, path[0][0]) < 1e-9:
            return i, "first"
        if math.dist(point, path[-1][1]) < 1e-9:
            return i, "last"
    return None


@pytest.mark.parametrize("resolution,difficulty,count", [(32, "hard", 12), (32, "easy", 12), (64, "easy", 2),
                                                         (128, "easy", 1)])
def test_labels_agree_with_the_recorded_paths_and_the_picture_is_the_record(resolution, difficulty, count):
    style, contour = STYLES[resolution], DIFFICULTIES[difficulty]
    drawings = draw_examples(7, resolution, difficulty, 0, count)
    for d in drawings:
        ends = [which_end(m, d.paths) for m in d.markers]
        assert None not in ends, "a marker is not at the end of any recorded path"
        (p0, end0), (p1, end1) = ends
        assert {p0, p1} <= {0, 1}, "markers sit on the target paths only"
        assert d.label == int(p0 == p1 and {end0, end1} == {"first", "last"})
        assert d.label == int(p0 == p1)  # the two ends of one path, or ends of two paths
        # the generator's rules, checked on the record
        assert [len(p) for p in d.paths[:2]] == [contour, contour]
        assert all(len(p) == max(1, contour // 3) for p in d.paths[2:])
        m = d.margin
        for path in d.paths:
            for (a0, b0), (a1, b1) in zip(path, path[1:]):
                assert math.dist(b0, a1) <= 2 * m + 1e-9  # the gap between dashes of a path
                turn = abs(math.atan2(b0[0] - a0[0], b0[1] - a0[1]) - math.atan2(b1[0] - a1[0], b1[1] - a1[1]))
                turn = min(turn, 2 * math.pi - turn)
                assert turn * style.continuity <= math.pi / 2 + 1e-6
            for a, b in path:
                assert math.isclose(math.dist(a, b), style.paddle_length)
        dashes = [(i, k, dash) for i, path in enumerate(d.paths) for k, dash in enumerate(path)]
        for i, k, (a, b) in dashes:  # dashes that do not follow each other keep clear (within the check's cells)
            points = np.linspace(a, b, 9)
            for j, l, (c, e) in dashes:
                if (i, k) != (j, l) and not (i == j and abs(k - l) == 1):
                    assert _segment_distance(points, c, e).min() >= 2 * m - 0.75
        # the picture is the record, drawn by the documented rule: each pixel covered as far as its centre lies
        # within thickness / 2 of a dash (one pixel of anti-aliasing) times the contrast, at most 1; the markers
        # are discs of marker_radius over it
        centres = np.stack(np.meshgrid(np.arange(resolution), np.arange(resolution), indexing="ij"), -1)
        centres = centres.reshape(-1, 2) + 0.5
        nearest = np.min([_segment_distance(centres, a, b) for _, _, (a, b) in dashes], axis=0)
        ink = np.minimum(np.clip(style.thickness / 2 + 0.5 - nearest, 0, 1) * style.contrast, 1)
        for marker in d.markers:
            disc = np.clip(style.marker_radius + 0.5 - np.hypot(*(centres - np.asarray(marker)).T), 0, 1)
            ink = np.maximum(ink, disc)
        assert np.abs(d.image.reshape(-1).astype(int) - np.round(ink * 255)).max() <= 1
        assert (d.image.reshape(-1)[ink == 0] == 0).all()

def test_same_seed_same_images_balanced_labels_and_tokens_row_major():
    a = draw_examples(3, 32, "hard", 0, 10)
    b = draw_examples(3, 32, "hard", 6, 10)  # the same examples, asked for in another range
    c = draw_examples(4, 32, "hard", 0, 10)
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a[6:], b))
    assert not any(np.array_equal(x.image, y.image) for x, y in zip(a, c))
    assert [d.label for d in a] == [0, 1] * 5
    bundle = make("pathfinder", task=Task("classify", 2), seed=3, examples=10, valid=0.2, test=0.2)
    rows = {tuple(r.tolist()): int(y) for split in (bundle.train, bundle.valid, bundle.test)
            for r, y in zip(split.input_ids, split.labels)}
    assert rows == {tuple(d.image.reshape(-1).astype(int).tolist()): d.label for d in a}
    assert bundle.train.input_ids.shape[1] == 1024 and bundle.train.attention_mask is None
    assert bundle.max_token_id == 255
    labels = torch.cat([bundle.train.labels, bundle.valid.labels, bundle.test.labels])
    assert int(labels.sum()) == 5

"""Rebuild docs/pathfinder.png and docs/pixel-sequence.png, the README's Long Range Arena figures (seconds):

    python docs/make-lra-figures.py

pathfinder.png: generated Pathfinder images as `pathfinder()` draws them (data seed 0), at 32x32 easy and hard
(LRA's Pathfinder) and 128x128 hard (Path-X), each titled with its label; the two target paths' dashes are traced
in colour on a copy of the first row (red: the path the first marker ends; blue: the other).
pixel-sequence.png: what a model reads: one 32x32 image as its row-major sequence of 1024 pixel tokens.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from hybridc.data.pathfinder import draw_examples  # noqa: E402

DOCS = Path(__file__).resolve().parent


def pathfinder_figure() -> Path:
    rows = [(32, "easy"), (32, "hard"), (128, "hard")]
    fig, axes = plt.subplots(len(rows) + 1, 4, figsize=(8.4, 2.25 * (len(rows) + 1)))
    for r, (resolution, difficulty) in enumerate(rows):
        for c, d in enumerate(draw_examples(0, resolution, difficulty, 0, 4)):
            ax = axes[r, c]
            ax.imshow(d.image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            ax.set_title(f"{resolution}x{resolution} {difficulty}: label {d.label}", fontsize=8)
            ax.axis("off")
    for c, d in enumerate(draw_examples(0, 32, "hard", 0, 4)):  # the record traced over the picture
        ax = axes[-1, c]
        ax.imshow(d.image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        first = d.marker_paths[0]
        for i, path in enumerate(d.paths[:2]):
            for (a, b) in path:
                ax.plot([a[1] - 0.5, b[1] - 0.5], [a[0] - 0.5, b[0] - 0.5], color="red" if i == first else "deepskyblue",
                        lw=1.2)
        ax.set_title(f"the record: label {d.label}", fontsize=8)
        ax.axis("off")
    fig.suptitle("pathfinder(): are the two markers the ends of one path? (data seed 0)", fontsize=10)
    fig.tight_layout()
    path = DOCS / "pathfinder.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def pixel_figure() -> Path:
    d = draw_examples(0, 32, "hard", 0, 2)[1]
    tokens = d.image.reshape(-1)
    fig = plt.figure(figsize=(10, 3.2))
    grid = fig.add_gridspec(1, 4)
    ax = fig.add_subplot(grid[0, 0])
    ax.imshow(d.image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    for y in (9.5, 10.5):
        ax.axhline(y, color="orange", lw=0.8)
    ax.set_title("32x32 image (row 10 boxed)", fontsize=9)
    ax.axis("off")
    ax = fig.add_subplot(grid[0, 1:])
    ax.plot(np.arange(len(tokens)), tokens, lw=0.6, color="black")
    ax.axvspan(320, 352, color="orange", alpha=0.3, label="row 10: tokens 320-351")
    for k in range(0, 1025, 32):
        ax.axvline(k, color="0.85", lw=0.4, zorder=0)
    ax.set_xlim(0, 1024)
    ax.set_xlabel("position in the sequence (row-major: row x 32 + column)")
    ax.set_ylabel("token (pixel value 0-255)")
    ax.set_title("what the model reads: 1024 tokens, one per pixel", fontsize=9)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    path = DOCS / "pixel-sequence.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


if __name__ == "__main__":
    for made in (pathfinder_figure(), pixel_figure()):
        print(f"wrote {made}")

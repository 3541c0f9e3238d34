"""Plots of a run from its metrics: loss curves per stage and alpha trajectories per block."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any, BinaryIO


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_losses(records: list[dict[str, Any]], path: Path | BinaryIO) -> Path | BinaryIO | None:
    """Training loss (and validation loss) against the global step, one colour per stage, as a PNG written to
    ``path`` (a file name or a binary file); None, writing nothing, when no step was trained."""
    train = [r for r in records if r.get("event") == "train" and r.get("kind") != "alphas"]
    if not train:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    by_stage: dict[str, list] = defaultdict(list)
    for r in train:
        by_stage[r["stage"]].append((r["global_step"], r["loss"]))
    for stage, points in by_stage.items():
        xs, ys = zip(*points)
        ax.plot(xs, ys, lw=1, label=f"{stage} (train)")
    valid = [r for r in records if r.get("event") == "eval" and r.get("split") == "valid"]
    by_stage_v: dict[str, list] = defaultdict(list)
    for r in valid:
        by_stage_v[r["stage"]].append((r["global_step"], r["loss"]))
    for stage, points in by_stage_v.items():
        xs, ys = zip(*points)
        ax.plot(xs, ys, "o--", ms=4, label=f"{stage} (valid)")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.set_title("loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
    return path


def plot_alphas(records: list[dict[str, Any]], names: list[str], path: Path | BinaryIO) -> Path | BinaryIO | None:
    """Mixture weights per block against the global step (one panel per block), as ``plot_losses`` writes."""
    points = [(r["global_step"], r["alphas"]) for r in records if r.get("event") == "train" and r.get("alphas")]
    if not points:
        return None
    plt = _pyplot()
    blocks = len(points[0][1])
    fig, axes = plt.subplots(1, blocks, figsize=(4 * blocks, 3.5), squeeze=False)
    steps = [s for s, _ in points]
    for i in range(blocks):
        ax = axes[0][i]
        for j, name in enumerate(names):
            ax.plot(steps, [a[i][j] for _, a in points], label=name)
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"block {i}")
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("alpha")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
    return path

"""``hybridc sweep``: the loss over a grid of fixed mixture weights (the paper's Figures 2 and 3).

For a two-component hybrid with one block (a line) or two blocks (a heatmap), each grid point fixes the
second component's weight a (the first gets 1 - a) and runs the spec's stages with the same budget (search
stages become fine-tuning, alphas never train, rewinds stay, discretization goes), so that a point differs
from the searched hybrid only in its alphas. The points' validation and test losses go
to ``sweep.csv`` and ``sweep.png``, where the alphas that search found (``--search RUN``) and programmed
alphas (``--programmed FILE``) are marked.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from pathlib import Path
from typing import Any, BinaryIO, Callable

from ..errors import CompileError
from ..io.guarded_dir import GuardedDir
from ..spec.derive import fixed_mixture_stages
from ..spec.frontend import ResolvedSpec
from .common import canonical, last, spec_from_data


def parse_grid(text: str) -> list[float]:
    """'0:1:11' -> 11 evenly spaced values from 0 to 1."""
    try:
        start, stop, count = text.split(":")
        start, stop, n = float(start), float(stop), int(count)
    except ValueError:
        raise CompileError(f"bad grid '{text}'", "write start:stop:count, e.g. 0:1:11") from None
    if n < 2 or not (0.0 <= start <= 1.0 and 0.0 <= stop <= 1.0):
        raise CompileError(f"bad grid '{text}'", "weights lie in [0, 1] and a grid has at least 2 points")
    return [round(start + (stop - start) * i / (n - 1), 10) for i in range(n)]


def point_spec(rs: ResolvedSpec, point: tuple[float, ...]) -> ResolvedSpec:
    data = canonical(rs)
    rows = [[round(1.0 - a, 10), a] for a in point]
    data["name"] = f"{rs.spec.name}-sweep"
    data["hybrid"]["mixture"] = f"fixed({rows})"
    data["train"]["stages"] = fixed_mixture_stages(data["train"]["stages"], rs.spec.train.stages)
    data["train"]["baselines"] = False
    if not any(stage["kind"] != "rewind" for stage in data["train"]["stages"]):
        raise CompileError("the spec has no training stage to fine-tune each point with",
                           "add a stage with data, e.g. {name: finetune, data: ..., steps: 100}")
    return spec_from_data(data, rs.base_dir, "sweep point")


def point_dir(out_dir: Path, point: tuple[float, ...]) -> Path:
    """Where a sweep keeps the run of one grid point (``point-0.3``, ``point-0-0.5``)."""
    return Path(out_dir) / ("point-" + "-".join(f"{a:g}" for a in point))


def point_row(point: tuple[float, ...], run_dir: Path, test: dict[str, Any] | None) -> dict[str, Any]:
    """One row of ``sweep.csv``: the point's alphas, its last validation and its test loss and accuracy."""
    valid = last(run_dir, "eval", "valid") or {}
    return {**{f"alpha_block{b}": a for b, a in enumerate(point)}, "valid_loss": valid.get("loss"),
            "test_loss": (test or {}).get("loss"), "valid_accuracy": valid.get("accuracy"),
            "test_accuracy": (test or {}).get("accuracy")}


def run_sweep(rs: ResolvedSpec, grid: list[float], out_dir: Path, *, search_run: Path | None = None,
              programmed: Path | None = None, quiet: bool = True, max_steps: int | None = None,
              say: Callable[[str], None] = print) -> list[dict[str, Any]]:
    from ..train.run import TrainOptions, train

    if len(rs.names) != 2 or rs.num_blocks not in (1, 2):
        raise CompileError(f"a sweep needs two components and one or two blocks, not {len(rs.names)} and "
                           f"{rs.num_blocks}", "sweep a smaller hybrid (it trains one model per grid point)")
    out_dir = Path(out_dir)
    rows = []
    points = list(itertools.product(grid, repeat=rs.num_blocks))
    with GuardedDir.open(out_dir, create=True) as out:  # (each point's run, and the table and plot, inside it)
        for i, point in enumerate(points):
            run_dir = point_dir(out_dir, point)
            where = f"alpha[{rs.names[1]}] = {', '.join(f'{a:g}' for a in point)}"
            say(f"sweep: point {i + 1}/{len(points)} {where}")
            result = train(point_spec(rs, point), TrainOptions(out_dir=run_dir, quiet=quiet, resume=True,
                                                               max_steps=max_steps, label=f"point {i + 1}: {where}"),
                           say=lambda _: None, within=out)
            rows.append(point_row(point, run_dir, result.test))
        table = io.StringIO(newline="")
        writer = csv.DictWriter(table, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        out.write_text("sweep.csv", table.getvalue())
        marks = _marks(search_run, programmed)
        image = io.BytesIO()
        plot_sweep(rows, rs, marks, image)
        out.write_bytes("sweep.png", image.getvalue())
    return rows


def _marks(search_run: Path | None, programmed: Path | None) -> dict[str, list[float]]:
    """Where search and programming put the second component's weight, per block (for the plot)."""
    marks = {}
    if search_run is not None:
        from .common import final_alphas

        alphas = final_alphas(search_run)
        if alphas:
            marks["search"] = [row[1] for row in alphas]
    if programmed is not None:
        marks["programmed"] = [row[1] for row in json.loads(Path(programmed).read_text())["alphas"]]
    return marks


def plot_sweep(rows: list[dict[str, Any]], rs: ResolvedSpec, marks: dict[str, list[float]],
               path: Path | BinaryIO) -> Path | BinaryIO:
    """The sweep's losses (a line over one block's weight, or a heatmap over two), as a PNG in ``path`` (a file
    name or a binary file)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    other = rs.names[1]
    if rs.num_blocks == 1:
        fig, ax = plt.subplots(figsize=(6, 4))
        xs = [r["alpha_block0"] for r in rows]
        ax.plot(xs, [r["valid_loss"] for r in rows], "o-", label="valid loss")
        ax.plot(xs, [r["test_loss"] for r in rows], "s--", alpha=0.6, label="test loss")
        for name, point in marks.items():
            ax.axvline(point[0], ls=":", color="C2" if name == "search" else "C3", label=f"{name} ({point[0]:.2f})")
        ax.set_xlabel(f"alpha[{other}]")
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    else:
        grid = sorted({r["alpha_block0"] for r in rows})
        losses = [[next(r["valid_loss"] for r in rows if r["alpha_block0"] == a0 and r["alpha_block1"] == a1)
                   for a1 in grid] for a0 in grid]
        fig, ax = plt.subplots(figsize=(5.5, 4.5))
        image = ax.imshow(losses, origin="lower", extent=(grid[0], grid[-1], grid[0], grid[-1]), aspect="auto",
                          cmap="viridis")
        fig.colorbar(image, ax=ax, label="valid loss")
        for name, point in marks.items():
            ax.plot(point[1], point[0], "*" if name == "search" else "X", ms=14, color="white", mec="black",
                    label=name)
        ax.set_xlabel(f"alpha[{other}] in block 1")
        ax.set_ylabel(f"alpha[{other}] in block 0")
        if marks:
            ax.legend(fontsize=8)
    ax.set_title(f"{rs.spec.name}: loss over fixed mixtures")
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
    return path

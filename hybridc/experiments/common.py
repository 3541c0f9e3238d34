"""Pieces shared by the experiments: derived specs, running them, reading their results."""

from __future__ import annotations

from pathlib import Path
from typing import Any, BinaryIO

from ..spec.emit import dump_yaml, spec_to_data
from ..spec.frontend import ResolvedSpec, parse_string, resolve
from ..train.metrics import MetricsLog


def spec_from_data(data: dict[str, Any], base_dir: Path, label: str) -> ResolvedSpec:
    """Resolve canonical spec data (relative paths against ``base_dir``)."""
    return resolve(parse_string(dump_yaml(data), file=f"<{label}>", base_dir=base_dir))


def canonical(rs: ResolvedSpec) -> dict[str, Any]:
    return spec_to_data(rs.spec)


def events(run_dir: Path) -> list[dict[str, Any]]:
    """The events of a run's metrics.jsonl (none when it has none)."""
    return MetricsLog(Path(run_dir)).records()


def last(run_dir: Path, event: str, split: str | None = None) -> dict[str, Any] | None:
    found = [e for e in events(run_dir) if e.get("event") == event and (split is None or e.get("split") == split)]
    return found[-1] if found else None


def final_alphas(run_dir: Path) -> list[list[float]] | None:
    """The alphas at the last logged step of a run (None for a discretized or single-component run)."""
    steps = [e for e in events(run_dir) if e.get("event") == "train" and e.get("alphas")]
    return steps[-1]["alphas"] if steps else None


def accuracy_bars(results: dict[str, Any], path: "Path | BinaryIO", *, title: str, ylabel: str,
                  labels: list[str] | None = None, chance: list[float] | None = None) -> "Path | BinaryIO":
    """An experiment's plot (mad, lra): grouped bars of test accuracy per task (``results["tasks"]``) and model
    (the hybrid, then each component), a dotted chance level per task if given; a PNG in ``path`` (a file name
    or a binary file)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(results["tasks"])
    models = ["hybrid", *results["components"]]
    fig, ax = plt.subplots(figsize=(max(6, 1.8 * len(tasks)), 4))
    width = 0.8 / len(models)
    for j, model in enumerate(models):
        xs = [i + (j - (len(models) - 1) / 2) * width for i in range(len(tasks))]
        ax.bar(xs, [results["tasks"][t]["test"][model] for t in tasks], width, label=model)
    for i, level in enumerate(chance or []):
        ax.plot([i - 0.45, i + 0.45], [level, level], "k:", lw=1)
    ax.set_xticks(range(len(tasks)))
    if labels:
        ax.set_xticklabels(labels, fontsize=8)
    else:
        ax.set_xticklabels(tasks)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
    return path

"""Pieces shared by the experiments: derived specs, running them, reading their results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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

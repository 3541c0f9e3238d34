"""Pieces shared by the experiments: derived specs, running them, reading their results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..spec.emit import dump_yaml, spec_to_data
from ..spec.frontend import ResolvedSpec, parse_string, resolve
from ..spec.model import Stage
from ..train.metrics import MetricsLog

TRAINING_KINDS = ("align", "search", "finetune", "retrain")


def spec_from_data(data: dict[str, Any], base_dir: Path, label: str) -> ResolvedSpec:
    """Resolve canonical spec data (relative paths against ``base_dir``)."""
    return resolve(parse_string(dump_yaml(data), file=f"<{label}>", base_dir=base_dir))


def canonical(rs: ResolvedSpec) -> dict[str, Any]:
    return spec_to_data(rs.spec)


def events(run_dir: Path) -> list[dict[str, Any]]:
    return MetricsLog(Path(run_dir) / "metrics.jsonl").records()


def last(run_dir: Path, event: str, split: str | None = None) -> dict[str, Any] | None:
    found = [e for e in events(run_dir) if e.get("event") == event and (split is None or e.get("split") == split)]
    return found[-1] if found else None


def final_alphas(run_dir: Path) -> list[list[float]] | None:
    """The alphas at the last logged step of a run (None for a discretized or single-component run)."""
    steps = [e for e in events(run_dir) if e.get("event") == "train" and e.get("alphas")]
    return steps[-1]["alphas"] if steps else None


def fixed_stages(stages: list[dict[str, Any]], plan: tuple[Stage, ...]) -> list[dict[str, Any]]:
    """The stages (canonical data, with ``plan`` the same stages parsed) with the mixture fixed: search
    becomes finetune with the weight steps the search takes (``Stage.weight_budget``: half of an alternating
    search's steps), alphas never train, discretization is dropped. Rewinds stay, so a fixed mixture's final
    weights have had exactly the fine-tuning the searched hybrid's have had since its last rewind, and its
    projectors as many steps in all (the sweep measures the choice of alphas, not a larger budget)."""
    out = []
    for stage, parsed in zip(stages, plan, strict=True):
        if stage["kind"] == "rewind":
            out.append(dict(stage))
            continue
        if stage["kind"] not in TRAINING_KINDS:
            continue
        stage = dict(stage)
        if stage["kind"] == "search":
            stage["kind"] = "finetune"
            stage.pop("search", None)
            stage.pop("steps", None)
            stage.pop("epochs", None)
            stage.update(parsed.weight_budget())
        stage["train"] = [g for g in stage["train"] if g != "alphas"]
        out.append(stage)
    return out

"""``hybridc program``: mixture weights "programmed" from proxy-task searches, written into a new spec.

The alphas of each block are the average of the alphas that search found on the chosen MAD tasks
(``mad-results.json``); then the metadata rule: a component that cannot take the spec's input length
(its ``max_length`` is shorter than the longest data sequence) gets weight 0 and the row is renormalised.
The new spec is the input spec with ``mixture: programmed(<alphas file>)`` (comments kept); searching
stages become fine-tuning stages with the same budget, since the mixture is now given.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import CompileError
from ..spec.emit import format_spec
from ..spec.frontend import ParsedSpec, ResolvedSpec
from ..spec.model import Mixture, Stage
from ..spec.checks import context_length


def program_alphas(results: dict[str, Any], rs: ResolvedSpec, tasks: list[str] | None = None) -> list[list[float]]:
    """Average the searched alphas over ``tasks`` per block, then apply the input-length rule."""
    names = list(rs.names)
    if results.get("components") != names:
        raise CompileError(f"the results are for components {results.get('components')}, not {names}",
                           "run hybridc mad on this spec (or one with the same components)")
    chosen = tasks or list(results["tasks"])
    missing = [t for t in chosen if t not in results["tasks"] or not results["tasks"][t].get("alphas")]
    if missing:
        raise CompileError(f"no searched alphas for {', '.join(missing)} in the results",
                           f"tasks with alphas: {', '.join(t for t in results['tasks'] if results['tasks'][t].get('alphas'))}")
    rows_per_task = [results["tasks"][t]["alphas"] for t in chosen]
    if any(len(rows) != rs.num_blocks for rows in rows_per_task):
        raise CompileError(f"the proxy hybrids have {len(rows_per_task[0])} blocks, this spec has {rs.num_blocks}",
                           "programming needs the same number of blocks")
    length = context_length(rs.spec, list(rs.components))
    usable = [rc.shape.max_length is None or rc.shape.max_length >= length for rc in rs.components]
    if not any(usable):
        raise CompileError(f"no component takes sequences of {length} tokens")
    alphas = []
    for block in range(rs.num_blocks):
        row = [sum(rows[block][j] for rows in rows_per_task) / len(rows_per_task) for j in range(len(names))]
        row = [a if ok else 0.0 for a, ok in zip(row, usable)]
        total = sum(row)
        row = [a / total for a in row]
        row[-1] = 1.0 - sum(row[:-1])  # exactly on the simplex
        alphas.append([round(a, 12) for a in row])
    return alphas


def _fixed(stage: Stage) -> Stage:
    if stage.kind == "search":
        stage = replace(stage, kind="finetune", search=None, name=stage.name)
    return replace(stage, train=tuple(g for g in stage.train if g != "alphas"))


def programmed_spec_text(parsed: ParsedSpec, alphas_file: str) -> str:
    spec = parsed.spec
    stages = tuple(_fixed(s) for s in spec.train.stages)
    spec = replace(spec, hybrid=replace(spec.hybrid, mixture=Mixture("programmed", path=alphas_file)),
                   train=replace(spec.train, stages=stages))
    return format_spec(spec, parsed.comments())


def write_programmed(parsed: ParsedSpec, rs: ResolvedSpec, results: dict[str, Any], out: Path,
                     tasks: list[str] | None = None) -> tuple[Path, Path]:
    """Write ``<out>`` (the new spec) and its alphas file beside it; returns both paths."""
    from ..io import atomic_write_text

    out = Path(out)
    alphas = program_alphas(results, rs, tasks)
    alphas_path = out.with_suffix(".alphas.json")
    payload = {"alphas": alphas, "components": list(rs.names), "tasks": tasks or list(results["tasks"]),
               "source": results.get("spec"), "rule": "mean over tasks; 0 for components that cannot take the input length"}
    atomic_write_text(alphas_path, json.dumps(payload, indent=2) + "\n")
    # stages named 'search' keep their name but become finetune stages: say so explicitly in the spec
    atomic_write_text(out, programmed_spec_text(parsed, alphas_path.name))
    return out, alphas_path

"""``hybridc program``: mixture weights "programmed" from proxy-task searches, written into a new spec.

The alphas of each block are the average of the alphas that search found on the chosen MAD tasks
(``mad-results.json``); then the metadata rule: a component that cannot take the spec's input length
(its ``max_length`` is shorter than the longest data sequence) gets weight 0 and the row is renormalised.
The new spec is the input spec with ``mixture: programmed(<alphas file>)`` (comments kept); searching
stages become fine-tuning stages with the same budget, since the mixture is now given.

The rule is for exactly the specs the front end rejects ("sequences of N tokens are longer than 'X'
allows"), so ``load_for_programming`` sets those errors, and only those, aside: it resolves the spec
with each stage's sequences cut to the shortest limit (every other check runs as usual), and the rule
then reads the real lengths from the spec as written.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import CompileError, Diagnostic, SpecError
from ..spec import checks
from ..spec.emit import format_spec
from ..spec.frontend import ParsedSpec, ResolvedSpec, parse_file, resolve
from ..spec.mad_presets import sequence_length, settings
from ..spec.model import DataSource, Mixture, Spec, Stage

# the front end's check_data / _check_mad message for data longer than a component's max_length
_TOO_LONG = re.compile(r"sequences of (\d+) tokens .*are longer than '(?P<name>[^']+)' allows \((?P<limit>\d+)\)")


@dataclass(frozen=True)
class Programmable:
    """A spec to program: as parsed, as resolved, and the front end's too-long-sequence errors that
    ``load_for_programming`` set aside (empty when the spec is valid as it is)."""

    parsed: ParsedSpec
    rs: ResolvedSpec
    set_aside: tuple[Diagnostic, ...] = ()


def load_for_programming(path: str | Path) -> Programmable:
    """Parse and resolve ``path`` with every front-end check except "sequences longer than a component
    allows": the programming rule decides those components (weight 0). Any other error is raised as is."""
    parsed = parse_file(path)
    try:
        return Programmable(parsed, resolve(parsed))
    except SpecError as err:
        too_long = [d for d in err.diagnostics if _TOO_LONG.search(d.message)]
        if not too_long or len(too_long) != len(err.diagnostics):
            raise
        cap = min(int(_TOO_LONG.search(d.message)["limit"]) for d in too_long)
        try:  # the same spec with sequences that every component takes: its configs and every other check
            rs = resolve(replace(parsed, spec=_capped(parsed.spec, cap)))
        except SpecError:
            raise err from None
        rs = replace(rs, spec=parsed.spec, context_length=checks.context_length(parsed.spec, list(rs.components)))
        return Programmable(parsed, rs, tuple(too_long))


def _capped(spec: Spec, cap: int) -> Spec:
    """``spec`` with every stage's sequences at most ``cap`` tokens long."""
    stages = []
    for stage in spec.train.stages:
        data = stage.data
        if data is not None:
            if data.name == "mad":
                values = _mad_values(data)
                extra = sequence_length(data.arg("task"), values) - values["length"]
                if values["length"] + extra > cap:
                    data = _with_arg(data, "length", max(cap - extra, 1))
            else:
                key = "block" if data.arg("block") else "length"
                if isinstance(data.arg(key), int) and data.arg(key) > cap:
                    data = _with_arg(data, key, cap)
        stages.append(replace(stage, data=data))
    return replace(spec, train=replace(spec.train, stages=tuple(stages)))


def _with_arg(data: DataSource, key: str, value: Any) -> DataSource:
    args = dict(data.args)
    args[key] = value
    return replace(data, args=tuple(args.items()))


def _mad_values(data: DataSource) -> dict[str, Any]:
    overrides = {k: data.arg(k) for k in ("vocab", "length", "examples", "noise", "copy", "motif")}
    return settings(data.arg("task"), data.arg("preset"), overrides)


def input_length(spec: Spec) -> int | None:
    """The longest sequence any stage's data gives the model (None: no stage has data)."""
    lengths = []
    for stage in spec.train.stages:
        data = stage.data
        if data is None:
            continue
        if data.name == "mad":
            lengths.append(sequence_length(data.arg("task"), _mad_values(data)))
        else:
            length = data.arg("block") or data.arg("length")
            if isinstance(length, int):
                lengths.append(length)
    return max(lengths) if lengths else None


def too_short(rs: ResolvedSpec) -> dict[str, int]:
    """{component: its max_length} for the components that cannot take the spec's input length."""
    length = input_length(rs.spec)
    if length is None:
        return {}
    return {rc.name: rc.shape.max_length for rc in rs.components
            if rc.shape.max_length is not None and rc.shape.max_length < length}


def program_alphas(results: dict[str, Any], rs: ResolvedSpec, tasks: list[str] | None = None) -> list[list[float]]:
    """Average the searched alphas over ``tasks`` per block, then apply the input-length rule."""
    names = list(rs.names)
    short = too_short(rs)
    if len(short) == len(names):
        length = input_length(rs.spec)
        raise CompileError(f"no component of this spec takes sequences of {length} tokens: "
                           + ", ".join(f"'{m}' allows {limit}" for m, limit in short.items())
                           + "; there is no mixture to program",
                           f"shorten the data to {max(short.values())} tokens or fewer, or add a component without "
                           "a length limit (e.g. mamba)")
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
    alphas = []
    for block in range(rs.num_blocks):
        row = [sum(rows[block][j] for rows in rows_per_task) / len(rows_per_task) for j in range(len(names))]
        row = [0.0 if m in short else a for a, m in zip(row, names)]
        total = sum(row)
        if total <= 0:
            raise CompileError(f"block {block}: the searched weight is all on {', '.join(repr(m) for m in short)}, "
                               f"which cannot take sequences of {input_length(rs.spec)} tokens",
                               "average over other tasks (--tasks), or write the mixture with fixed(...)")
        row = [a / total for a in row]
        last = max(j for j, m in enumerate(names) if m not in short)
        row[last] = 1.0 - sum(a for j, a in enumerate(row) if j != last)  # exactly on the simplex
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


def zero_reasons(rs: ResolvedSpec) -> dict[str, str]:
    """{component: why it has weight 0} under the input-length rule."""
    length = input_length(rs.spec)
    return {m: f"takes at most {limit} tokens, the data has sequences of {length}" for m, limit in too_short(rs).items()}


def write_programmed(parsed: ParsedSpec, rs: ResolvedSpec, results: dict[str, Any], out: Path,
                     tasks: list[str] | None = None) -> tuple[Path, Path]:
    """Write ``<out>`` (the new spec) and its alphas file beside it; returns both paths."""
    from ..io import atomic_write_text

    out = Path(out)
    alphas = program_alphas(results, rs, tasks)
    alphas_path = out.with_suffix(".alphas.json")
    payload = {"alphas": alphas, "components": list(rs.names), "tasks": tasks or list(results["tasks"]),
               "source": results.get("spec"), "rule": "mean over tasks; 0 for components that cannot take the input length",
               "input_length": input_length(rs.spec), "zero": zero_reasons(rs)}
    atomic_write_text(alphas_path, json.dumps(payload, indent=2) + "\n")
    # stages named 'search' keep their name but become finetune stages: say so explicitly in the spec
    atomic_write_text(out, programmed_spec_text(parsed, alphas_path.name))
    return out, alphas_path


def programmed_check(path: Path) -> list[str]:
    """What ``hybridc validate`` says of the programmed spec at ``path``, as lines to show (none when it
    is valid): the front end may still reject a component of weight 0 for its length."""
    from ..spec.frontend import load_spec

    try:
        load_spec(path)
    except SpecError as err:
        lines = [f"note: hybridc validate and train reject {path} as written:", *(d.render() for d in err.diagnostics)]
        if all(_TOO_LONG.search(d.message) for d in err.diagnostics):
            names = sorted({_TOO_LONG.search(d.message)["name"] for d in err.diagnostics})
            lines.append(f"({', '.join(repr(m) for m in names)}: weight 0 in every block, so no layer of "
                         f"{'it' if len(names) == 1 else 'them'} runs, but the front end still checks the length)")
        return lines
    return []

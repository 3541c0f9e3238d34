"""Semantic diff of two specs: what a change does to the model, not which YAML lines moved.

Both specs are compared in canonical form, so key order, comments, quoting, spacing and defaults written
out or left implicit never show. When the components' configs can be read (torch-free, no weights),
``split(n)`` is compared as the layer ranges it means; otherwise blocks are compared as written.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .emit import render_data
from .frontend import ParsedSpec, ResolvedSpec
from .model import Ranges, Spec, Stage


@dataclass(frozen=True)
class Change:
    """One semantic change. ``kind``: added | removed | changed."""

    path: str
    kind: str
    before: Any = None
    after: Any = None
    note: str = ""

    def inverse(self) -> "Change":
        kind = {"added": "removed", "removed": "added"}.get(self.kind, self.kind)
        return Change(self.path, kind, self.after, self.before, invert_note(self.note))

    def render(self) -> str:
        if self.kind == "added":
            text = f"{self.path}: added {_show(self.after)}"
        elif self.kind == "removed":
            text = f"{self.path}: removed (was {_show(self.before)})"
        else:
            text = f"{self.path}: {_show(self.before)} -> {_show(self.after)}"
        return text + (f"  ({self.note})" if self.note else "")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in value.items()) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def invert_note(note: str) -> str:
    """Notes are written so that swapping sides only flips signs and 'from/to' (see ``_moved``)."""
    if not note:
        return note
    if note.startswith("layers moved: "):
        parts = note[len("layers moved: "):].split("; ")
        flipped = []
        for part in parts:
            what, _, rest = part.partition(" from block ")
            src, _, dst = rest.partition(" to block ")
            flipped.append(f"{what} from block {dst} to block {src}")
        return "layers moved: " + "; ".join(flipped)
    out = []
    for token in note.split(", "):
        name, _, delta = token.rpartition(" ")
        if delta[:1] in "+-" and delta[1:2].isdigit():
            delta = ("-" if delta[0] == "+" else "+") + delta[1:]
        out.append(f"{name} {delta}".strip())
    return ", ".join(out)


def _signed(x: float) -> str:
    return f"{x:+.6g}"


# ---- what is compared -------------------------------------------------------------------------
def _blocks(spec: Spec, rs: ResolvedSpec | None, name: str) -> list[str]:
    """Layer ranges per block when resolved, else the blocks as written."""
    if rs is not None:
        return [str(r) for r in rs.component(name).ranges]
    blocks = spec.component(name).blocks
    return [str(r) for r in blocks.items] if isinstance(blocks, Ranges) else [str(blocks)]


def _component_fields(spec: Spec, rs: ResolvedSpec | None, name: str) -> dict[str, Any]:
    c = spec.component(name)
    fields: dict[str, Any] = {"source": str(c.source) if c.source.kind != "init" else "init"}
    if c.source.kind == "init":
        for key, value in c.source.init:
            fields[f"init.{key}"] = value
    fields["trust_remote_code"] = c.trust_remote_code
    fields["vocab"] = c.vocab
    return fields


def _stage_fields(stage: Stage) -> dict[str, Any]:
    fields = {"kind": stage.kind, "init": stage.init}
    if stage.trains:
        fields.update(
            train=list(stage.train), data=render_data(stage.data) if stage.data else None,
            search=str(stage.search) if stage.search else None,
            distill=str(stage.distill) if stage.distill else None, steps=stage.steps, epochs=stage.epochs,
            batch_size=stage.batch_size,
            grad_accum=stage.grad_accum, lr=stage.lr, weight_decay=stage.weight_decay, betas=list(stage.betas),
            warmup=stage.warmup, schedule=stage.schedule, grad_clip=stage.grad_clip, eval_every=stage.eval_every,
        )
    return fields


def _moved(before: list[str], after: list[str]) -> str:
    """'layers moved: 4..6 from block 0 to block 1' for a change of layer ranges."""
    def owner(ranges: list[str]) -> dict[int, int]:
        out = {}
        for block, text in enumerate(ranges):
            if ".." not in text:
                return {}
            a, b = map(int, text.split(".."))
            for layer in range(a, b):
                out[layer] = block
        return out

    old, new = owner(before), owner(after)
    if not old or not new or set(old) != set(new):
        return ""
    moves: list[tuple[int, int, int, int]] = []  # start, stop, from, to
    for layer in sorted(old):
        if old[layer] != new[layer]:
            if moves and moves[-1][1] == layer and moves[-1][2:] == (old[layer], new[layer]):
                moves[-1] = (moves[-1][0], layer + 1, old[layer], new[layer])
            else:
                moves.append((layer, layer + 1, old[layer], new[layer]))
    return "layers moved: " + "; ".join(f"{a}..{b} from block {f} to block {t}" for a, b, f, t in moves) if moves else ""


def _compare(path: str, before: Any, after: Any, out: list[Change], note: str = "") -> None:
    if before == after:
        return
    if before is None:
        out.append(Change(path, "added", None, after, note))
    elif after is None:
        out.append(Change(path, "removed", before, None, note))
    else:
        out.append(Change(path, "changed", before, after, note))


def _alpha_rows(spec: Spec, rs: ResolvedSpec | None):
    if rs is not None:
        return rs.alphas
    return spec.hybrid.mixture.alphas


def diff_specs(a: Spec, b: Spec, ra: ResolvedSpec | None = None, rb: ResolvedSpec | None = None) -> list[Change]:
    """Semantic changes from ``a`` to ``b`` (pass resolved specs to compare ``split(n)`` as ranges)."""
    out: list[Change] = []
    for key in ("name", "tokenizer"):
        _compare(key, getattr(a, key), getattr(b, key), out)
    _compare("task", str(a.task), str(b.task), out)
    names_a, names_b = a.component_names, b.component_names
    for name in names_a:
        if name not in names_b:
            out.append(Change(f"components.{name}", "removed", _component_fields(a, ra, name)["source"], None))
    for name in names_b:
        if name not in names_a:
            out.append(Change(f"components.{name}", "added", None, _component_fields(b, rb, name)["source"]))
    common = [n for n in names_a if n in names_b]
    if [n for n in names_a if n in common] != [n for n in names_b if n in common]:
        _compare("components (mixing order)", list(names_a), list(names_b), out)
    resolved = ra is not None and rb is not None
    for name in common:
        fa, fb = _component_fields(a, ra, name), _component_fields(b, rb, name)
        for key in dict.fromkeys([*fa, *fb]):
            _compare(f"components.{name}.{key}", fa.get(key), fb.get(key), out)
        ba = _blocks(a, ra if resolved else None, name)
        bb = _blocks(b, rb if resolved else None, name)
        _compare(f"components.{name}.blocks", ", ".join(ba), ", ".join(bb), out, _moved(ba, bb))
    ha, hb = a.hybrid, b.hybrid
    _compare("hybrid.width", "max" if ha.width is None else ha.width, "max" if hb.width is None else hb.width, out)
    for name in common:
        _compare(f"hybrid.projector.{name}", ha.projector(name), hb.projector(name), out)
    for key in ("embeddings", "head"):
        _compare(f"hybrid.{key}", getattr(ha, key), getattr(hb, key), out)
    _compare("hybrid.budget", str(ha.budget) if ha.budget else None, str(hb.budget) if hb.budget else None, out)
    ma, mb = ha.mixture, hb.mixture
    if ma.mode != mb.mode or (ma.mode == "programmed" and ma.path != mb.path):
        _compare("hybrid.mixture", str(ma), str(mb), out)
    elif ma.mode in ("fixed", "programmed") and names_a == names_b:
        rows_a, rows_b = _alpha_rows(a, ra) or (), _alpha_rows(b, rb) or ()
        for i in range(max(len(rows_a), len(rows_b))):
            row_a = list(rows_a[i]) if i < len(rows_a) else None
            row_b = list(rows_b[i]) if i < len(rows_b) else None
            note = ""
            if row_a is not None and row_b is not None and len(row_a) == len(row_b):
                note = ", ".join(f"{n} {_signed(y - x)}" for n, x, y in zip(names_a, row_a, row_b) if x != y)
            _compare(f"hybrid.mixture[{i}]", row_a, row_b, out, note)
    for key in ("seed", "data_seed", "checkpoint_every", "baselines"):
        _compare(f"train.{key}", getattr(a.train, key), getattr(b.train, key), out)
    _diff_stages(a.train.stages, b.train.stages, out)
    return out


def _diff_stages(sa: tuple[Stage, ...], sb: tuple[Stage, ...], out: list[Change]) -> None:
    by_a = {s.name: s for s in sa}
    by_b = {s.name: s for s in sb}
    for s in sa:
        if s.name not in by_b:
            out.append(Change(f"train.stages[{s.name}]", "removed", s.kind, None))
    for s in sb:
        if s.name not in by_a:
            out.append(Change(f"train.stages[{s.name}]", "added", None, s.kind))
    common_a = [s.name for s in sa if s.name in by_b]
    common_b = [s.name for s in sb if s.name in by_a]
    if common_a != common_b:
        _compare("train.stages (order)", common_a, common_b, out)
    for name in common_a:
        fa, fb = _stage_fields(by_a[name]), _stage_fields(by_b[name])
        for key in dict.fromkeys([*fa, *fb]):
            _compare(f"train.stages[{name}].{key}", fa.get(key), fb.get(key), out)


# ---- the graph consequence ------------------------------------------------------------------
@dataclass(frozen=True)
class CostDelta:
    group: str
    before: int
    after: int

    def render(self) -> str:
        from ..graph.render import human

        delta = self.after - self.before
        return f"{self.group}: {human(self.before)} -> {human(self.after)} ({'+' if delta >= 0 else '-'}{human(abs(delta))})"


def graph_delta(ra: ResolvedSpec, rb: ResolvedSpec) -> list[CostDelta]:
    """Parameters per group and FLOPs per token, before -> after (configs only)."""
    from ..graph.build import build_graph

    ga, gb = build_graph(ra), build_graph(rb)
    pa, pb = ga.params_by_group(), gb.params_by_group()
    rows = [CostDelta(f"params.{g}", pa[g], pb[g]) for g in pa]
    rows.append(CostDelta("params.total", ga.total_params, gb.total_params))
    rows.append(CostDelta("flops_per_token", ga.flops_per_token, gb.flops_per_token))
    return rows


def try_resolve(parsed: ParsedSpec) -> ResolvedSpec | None:
    from ..errors import SpecError
    from .frontend import resolve

    try:
        return resolve(parsed)
    except SpecError:
        return None

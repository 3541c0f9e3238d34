"""Semantic diff of two specs: what a change does to the model, not which YAML lines moved.

Both specs are compared in canonical form, so key order, comments, quoting, spacing and defaults written
out or left implicit never show. When the components' configs can be read (torch-free, no weights),
``split(n)`` is compared as the layer ranges it means; otherwise blocks are compared as written.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..spec.emit import spec_to_data
from ..spec.frontend import ParsedSpec, ResolvedSpec
from ..spec.model import Ranges, Spec


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
# The diff walks the canonical data of both specs (``spec_to_data``: what ``fmt`` prints, so every key of
# the language is in it, or ``fmt`` would lose it), key by key: a key added to the spec is compared without
# being named here. Only the views that make a change readable are spelled out below: components and
# stages matched by name (not position), layer blocks as the ranges they mean, projectors per component,
# and a fixed or programmed mixture row by row.
_ABSENT = object()


def _blocks(spec: Spec, rs: ResolvedSpec | None, name: str) -> list[str]:
    """Layer ranges per block when resolved, else the blocks as written."""
    if rs is not None:
        return [str(r) for r in rs.component(name).ranges]
    blocks = spec.component(name).blocks
    return [str(r) for r in blocks.items] if isinstance(blocks, Ranges) else [str(blocks)]


def _source(component: dict[str, Any]) -> str:
    """What a component added or removed is shown as: its ``from``, or ``init``."""
    return str(component["from"]) if "from" in component else "init"


def _view(spec: Spec, rs: ResolvedSpec | None) -> dict[str, Any]:
    """The canonical data of ``spec`` as the diff compares it (see above)."""
    data = spec_to_data(spec)
    for name, component in data["components"].items():
        component["blocks"] = _blocks(spec, rs, name)
    data["hybrid"]["projector"] = {name: spec.hybrid.projector(name) for name in spec.component_names}
    data["train"]["stages"] = {stage.pop("name"): stage for stage in data["train"]["stages"]}
    return data


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


def _walk(path: str, a: Any, b: Any, out: list[Change]) -> None:
    """Every difference between two canonical values: mappings key by key (a key on one side only is added
    or removed whole), anything else compared as a value."""
    if a == b:
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for key in dict.fromkeys([*a, *b]):
            _walk(f"{path}.{key}" if path else str(key), a.get(key, _ABSENT), b.get(key, _ABSENT), out)
        return
    _compare(path, None if a is _ABSENT else a, None if b is _ABSENT else b, out)


def _alpha_rows(spec: Spec, rs: ResolvedSpec | None):
    if rs is not None:
        return rs.alphas
    return spec.hybrid.mixture.alphas


def _diff_components(va: dict[str, Any], vb: dict[str, Any], out: list[Change]) -> list[str]:
    """Components added, removed, reordered, and every key of those on both sides; returns the common ones."""
    for name in va:
        if name not in vb:
            out.append(Change(f"components.{name}", "removed", _source(va[name]), None))
    for name in vb:
        if name not in va:
            out.append(Change(f"components.{name}", "added", None, _source(vb[name])))
    common = [n for n in va if n in vb]
    if common != [n for n in vb if n in va]:
        _compare("components (mixing order)", list(va), list(vb), out)
    for name in common:
        ca, cb = dict(va[name]), dict(vb[name])
        ba, bb = ca.pop("blocks"), cb.pop("blocks")
        _walk(f"components.{name}", ca, cb, out)
        _compare(f"components.{name}.blocks", ", ".join(ba), ", ".join(bb), out, _moved(ba, bb))
    return common


def _rows_in_order(rows, written: tuple[str, ...], names: tuple[str, ...]) -> list[list[float]]:
    """Alpha rows written in the components' order ``written``, with their columns in the order ``names``
    (a row of another length is left as written: its own change)."""
    columns = [written.index(name) for name in names]
    return [[row[j] for j in columns] if len(row) == len(columns) else list(row) for row in rows]


def _diff_mixture(a: Spec, b: Spec, ra: ResolvedSpec | None, rb: ResolvedSpec | None, out: list[Change]) -> None:
    """The mixture as written, or, between fixed (or programmed from one file) mixtures of the same
    components, row by row with the change of each weight. A weight belongs to its component, not to a
    column: components reordered with their columns are the same mixture (the reorder is its own change),
    so the rows of both are read in one order of components (the spec's, or sorted names where the two
    orders differ, so that a diff and its inverse show the same rows)."""
    ma, mb = a.hybrid.mixture, b.hybrid.mixture
    rowwise = (ma.mode == mb.mode and ma.mode in ("fixed", "programmed") and ma.path == mb.path
               and sorted(a.component_names) == sorted(b.component_names))
    if not rowwise:
        _compare("hybrid.mixture", str(ma), str(mb), out)
        return
    names = a.component_names if a.component_names == b.component_names else tuple(sorted(a.component_names))
    rows_a = _rows_in_order(_alpha_rows(a, ra) or (), a.component_names, names)
    rows_b = _rows_in_order(_alpha_rows(b, rb) or (), b.component_names, names)
    for i in range(max(len(rows_a), len(rows_b))):
        row_a = rows_a[i] if i < len(rows_a) else None
        row_b = rows_b[i] if i < len(rows_b) else None
        note = ""
        if row_a is not None and row_b is not None and len(row_a) == len(row_b):
            note = ", ".join(f"{n} {_signed(y - x)}" for n, x, y in zip(names, row_a, row_b) if x != y)
        _compare(f"hybrid.mixture[{i}]", row_a, row_b, out, note)


def _diff_stages(sa: dict[str, Any], sb: dict[str, Any], out: list[Change]) -> None:
    """Stages matched by name: added, removed, reordered, and every key of those on both sides."""
    for name, stage in sa.items():
        if name not in sb:
            out.append(Change(f"train.stages[{name}]", "removed", stage["kind"], None))
    for name, stage in sb.items():
        if name not in sa:
            out.append(Change(f"train.stages[{name}]", "added", None, stage["kind"]))
    common_a = [n for n in sa if n in sb]
    common_b = [n for n in sb if n in sa]
    if common_a != common_b:
        _compare("train.stages (order)", common_a, common_b, out)
    for name in common_a:
        _walk(f"train.stages[{name}]", sa[name], sb[name], out)


def diff_specs(a: Spec, b: Spec, ra: ResolvedSpec | None = None, rb: ResolvedSpec | None = None) -> list[Change]:
    """Semantic changes from ``a`` to ``b`` (pass resolved specs to compare ``split(n)`` as ranges).

    Every key of the canonical form is compared (see ``_view``); the order of the changes follows it."""
    resolved = ra is not None and rb is not None
    va, vb = _view(a, ra if resolved else None), _view(b, rb if resolved else None)
    out: list[Change] = []
    common: list[str] = []
    for key in dict.fromkeys([*va, *vb]):
        before, after = va.get(key, _ABSENT), vb.get(key, _ABSENT)
        if key == "components":
            common = _diff_components(before, after, out)
        elif key == "hybrid":
            for part in dict.fromkeys([*before, *after]):
                if part == "projector":
                    for name in common:
                        _compare(f"hybrid.projector.{name}", before[part][name], after[part][name], out)
                elif part == "mixture":
                    _diff_mixture(a, b, ra, rb, out)
                else:
                    _walk(f"hybrid.{part}", before.get(part, _ABSENT), after.get(part, _ABSENT), out)
        elif key == "train":
            ta, tb = dict(before), dict(after)
            stages_a, stages_b = ta.pop("stages"), tb.pop("stages")
            _walk("train", ta, tb, out)
            _diff_stages(stages_a, stages_b, out)
        else:
            _walk(key, before, after, out)
    return out


# ---- the graph consequence ------------------------------------------------------------------
@dataclass(frozen=True)
class CostDelta:
    group: str
    before: int
    after: int

    def render(self) -> str:
        from .render import human

        delta = self.after - self.before
        return f"{self.group}: {human(self.before)} -> {human(self.after)} ({'+' if delta >= 0 else '-'}{human(abs(delta))})"


def graph_delta(ra: ResolvedSpec, rb: ResolvedSpec) -> list[CostDelta]:
    """Parameters per group and FLOPs per token, before -> after (configs only)."""
    from .build import build_graph

    ga, gb = build_graph(ra), build_graph(rb)
    pa, pb = ga.params_by_group(), gb.params_by_group()
    rows = [CostDelta(f"params.{g}", pa[g], pb[g]) for g in pa]
    rows.append(CostDelta("params.total", ga.total_params, gb.total_params))
    rows.append(CostDelta("flops_per_token", ga.flops_per_token, gb.flops_per_token))
    return rows


def try_resolve(parsed: ParsedSpec) -> ResolvedSpec | None:
    from ..errors import SpecError
    from ..spec.frontend import resolve

    try:
        return resolve(parsed)
    except SpecError:
        return None

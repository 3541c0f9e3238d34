"""Stage 3 of the front end: schema-valid YAML tree -> canonical ``Spec`` + ``SourceMap``.

Parses every expression field, fills every default, and reports problems that need no component
config (expression syntax, unknown names, stage rules). Problems are collected, not raised one by one.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import Diagnostic, Location
from . import expr as E
from .model import (
    BUDGET_MEASURES,
    DEFAULT_DISTILL,
    DEFAULT_SEARCH,
    PARAM_GROUPS,
    STAGE_KINDS,
    TRAINING_KINDS,
    Budget,
    Component,
    DataSource,
    Distill,
    Hybrid,
    LayerRange,
    Mixture,
    Ranges,
    Search,
    Source,
    Spec,
    Split,
    Stage,
    Task,
    Train,
)
from .schema import did_you_mean
from .signatures import DATA_SOURCES, DISTILL_LOSSES, SEARCH_ALGORITHMS, Signature
from .tree import Mapping, Node, Scalar, Sequence

COMMON_INIT_KEYS = ("family", "hidden_size", "layers", "heads", "vocab_size", "max_length")
# Names a component cannot take: the hybrid keeps its components' parts in torch ``nn.ModuleDict``s keyed by
# component name, and a module cannot have a child named like one of its attributes (tests check this list
# against torch's, with transformers imported: it adds smart_apply). Names starting with '_' are refused too
# (torch's private attributes).
MODULE_ATTRIBUTES = frozenset("""
    T_destination add_module apply bfloat16 buffers call_super_init children clear compile cpu cuda double
    dump_patches eval extra_repr float forward get_buffer get_extra_state get_parameter get_submodule half ipu
    items keys load_state_dict modules mtia named_buffers named_children named_modules named_parameters
    parameters pop register_backward_hook register_buffer register_forward_hook register_forward_pre_hook
    register_full_backward_hook register_full_backward_pre_hook register_load_state_dict_post_hook
    register_load_state_dict_pre_hook register_module register_parameter register_state_dict_post_hook
    register_state_dict_pre_hook requires_grad_ set_extra_state set_submodule share_memory state_dict to
    smart_apply to_empty train training type update values xpu zero_grad
""".split())
_STAGE_DEFAULT = Stage(name="", kind="align")

Path = tuple[Any, ...]


@dataclass
class SourceMap:
    """Where each part of a ``Spec`` was written: spec path -> location.

    Paths are tuples like ("components", "neo", "blocks", 1) or ("train", "stages", 0, "lr").
    ``at`` falls back to the nearest written ancestor, then the top of the file.
    """

    file: str
    locations: dict[Path, Location] = field(default_factory=dict)

    def at(self, *path: Any) -> Location:
        for n in range(len(path), -1, -1):
            loc = self.locations.get(tuple(path[:n]))
            if loc is not None:
                return loc
        return Location(self.file, 1, 1)

    def set(self, path: Path, loc: Location) -> None:
        self.locations[path] = loc


class _Builder:
    def __init__(self, file: str):
        self.diags: list[Diagnostic] = []
        self.smap = SourceMap(file)
        self.broken: set[Path] = set()  # spec paths whose values had errors

    def watch(self, path: Path, build):
        """``build()``, marking ``path`` broken when it reports a problem."""
        before = len(self.diags)
        value = build()
        if len(self.diags) > before:
            self.broken.add(path)
        return value

    def error(self, loc: Location, message: str, hint: str | None = None) -> None:
        self.diags.append(Diagnostic(loc, message, hint))

    def record(self, path: Path, node: Node | None) -> None:
        if node is not None:
            self.smap.set(path, node.loc)

    def parse(self, node: Scalar, what: str) -> E.Expr | None:
        try:
            return E.parse_expr(str(node.value))
        except E.ExprSyntaxError as err:
            self.error(node.loc_at(err.offset), f"invalid {what}: {err.message}", err.hint)
            return None


def build_spec(root: Mapping, file: str) -> tuple[Spec | None, SourceMap, list[Diagnostic], frozenset[Path]]:
    """Canonical spec of a schema-valid tree, its source map, the problems found and where they are.

    With problems, the spec holds the parts that built (components with errors left out, a stage that
    could not be read as a placeholder that trains nothing), so that later checks can still look at the
    rest; ``broken`` names the spec paths whose values are unknown (checks that read them are skipped).
    None when not even one component built."""
    b = _Builder(file)
    b.record((), root)
    for key, value in root:
        b.record((key.value,), value)
    components = _components(b, root.get("components"))
    # every declared name, also of components with errors (no follow-on "unknown component" errors)
    names = tuple(key.value for key, _ in root.get("components") or ())
    tokenizer = _tokenizer(b, root.get("tokenizer"), names)
    hybrid = b.watch(("hybrid",), lambda: _hybrid(b, root.get("hybrid"), names))
    task = b.watch(("task",), lambda: _task(b, root.get("task")))
    train = _train(b, root.get("train"), hybrid)
    intact = tuple(c for c in components if ("components", c.name) not in b.broken)
    if not intact:
        return None, b.smap, b.diags, frozenset(b.broken)
    name = root.get("name")
    spec = Spec(name=name.value, tokenizer=tokenizer, components=intact, hybrid=hybrid, task=task, train=train)
    return spec, b.smap, b.diags, frozenset(b.broken)


# ---- components ------------------------------------------------------------------------------
def _components(b: _Builder, node: Mapping | None) -> tuple[Component, ...]:
    out = []
    for key, value in node or ():
        name = key.value
        b.smap.set(("components", name), key.loc)
        for k, v in value:
            b.record(("components", name, k.value), v)
        before = len(b.diags)
        if name in MODULE_ATTRIBUTES or name.startswith("_"):
            b.error(key.loc, f"'{name}' cannot name a component: PyTorch modules use that name themselves",
                    f"rename it, e.g. '{name.strip('_') or 'c'}_model'")
        source = _source(b, name, value)
        blocks = _blocks(b, name, value.get("blocks"))
        trust = value.get("trust_remote_code")
        vocab = _vocab(b, name, value.get("vocab"), source)
        if len(b.diags) > before:
            b.broken.add(("components", name))
        if source is not None and blocks is not None:
            out.append(Component(name, source, blocks, bool(trust.value) if trust is not None else False, vocab))
    return tuple(out)


def _vocab(b: _Builder, name: str, node: Scalar | None, source: Source | None) -> str:
    """``vocab`` (the schema checked the word): only a pretrained component has rows to keep or move."""
    if node is None:
        return "pretrained"
    value = str(node.value)
    if value != "pretrained" and source is not None and source.kind == "init":
        b.error(node.loc, f"component '{name}' is built from scratch: it has no pretrained embedding to replace "
                          f"or transplant (vocab: {value})",
                "remove vocab: a from-scratch component's embedding is new and indexed by the hybrid's tokenizer")
    return value


def _source(b: _Builder, name: str, node: Mapping) -> Source | None:
    frm, init = node.get("from"), node.get("init")
    if frm is not None and init is not None:
        b.error(node.key_node("init").loc, f"component '{name}' has both 'from' and 'init'",
                "use 'from' for pretrained weights or 'init' for a new model, not both")
        return None
    if frm is None and init is None:
        b.error(b.smap.at("components", name), f"component '{name}' needs 'from' (pretrained) or 'init' (from scratch)",
                "e.g. from: hf:EleutherAI/gpt-neo-125m, or init: {family: mamba, hidden_size: 128, layers: 4}")
        return None
    if frm is not None:
        text = str(frm.value).strip()
        if text.startswith("hf:"):
            ref, _, revision = text[3:].partition("@")
            if hub_id_problem(ref):
                b.error(frm.loc, f"invalid Hub id '{text}'", "write hf:<org>/<name>[@revision]")
                return None
            return Source("hf", ref, revision or None)
        return Source("local", text)
    items = []
    for key, value in init:
        if not _IDENTIFIER.fullmatch(str(key.value)):
            b.error(key.loc, f"'{str(key.value)[:40]}' in component '{name}' init is not a config key",
                    "init keys are Hugging Face config attributes: letters, digits and underscores, e.g. hidden_size")
            continue
        b.record(("components", name, "init", key.value), value)
        b.record(("components", name, "init", key.value, "key"), key)
        if isinstance(value, Scalar):
            items.append((key.value, value.value))
        else:
            items.append((key.value, _freeze(value.to_python())))
    order = {k: i for i, k in enumerate(COMMON_INIT_KEYS)}
    items.sort(key=lambda kv: (order.get(kv[0], len(order)), kv[0]))
    return Source("init", init=tuple(items))


_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?")


def hub_id_problem(ref: str) -> str | None:
    """Why ``ref`` (after ``hf:``, before ``@revision``) is not a Hub repository id, else None. A path
    (``/abs``, ``..``, ``~``) is never one: loaders would read it from the disk, past any ``--root``."""
    if not _HUB_ID.fullmatch(ref) or ".." in ref:
        return f"'{(ref if len(ref) <= 80 and ref.isprintable() else repr(ref[:77]) + '...')}' is not a Hub id (<org>/<name> or <name>: letters, digits, '.', '_', '-')"
    return None


def _freeze(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple((k, _freeze(v)) for k, v in value.items())
    return value


def thaw(value: Any) -> Any:
    """Inverse of freezing config values for JSON: tuples -> lists (pairs of str keys -> dicts)."""
    if isinstance(value, tuple):
        if value and all(isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], str) for v in value):
            return {k: thaw(v) for k, v in value}
        return [thaw(v) for v in value]
    return value


def _blocks(b: _Builder, name: str, node: Node | None):
    path = ("components", name, "blocks")
    if node is None:
        return Split(1)
    if isinstance(node, Sequence):
        ranges = []
        for i, item in enumerate(node):
            parsed = b.parse(item, "layer range")
            if parsed is None:
                continue
            if not isinstance(parsed, E.Ranges) or len(parsed.items) != 1:
                b.error(item.loc, f"'{item.value}' is not a layer range", "write start..stop, e.g. 0..6")
                continue
            ranges.append(_range(b, item, parsed.items[0], path + (len(ranges),)))
        return Ranges(tuple(r for r in ranges if r is not None)) if len(ranges) == len(node) else None
    parsed = b.parse(node, "blocks")
    if parsed is None:
        return None
    if isinstance(parsed, E.Call) and parsed.name == "split":
        if len(parsed.args) != 1 or parsed.kwargs or not _is_int(parsed.args[0]) or parsed.args[0].value < 1:
            b.error(node.loc_at(parsed.offset), "split(n) takes one positive whole number", "e.g. split(2)")
            return None
        return Split(parsed.args[0].value)
    if isinstance(parsed, E.Ranges):
        ranges = [_range(b, node, r, path + (i,)) for i, r in enumerate(parsed.items)]
        return Ranges(tuple(ranges)) if all(r is not None for r in ranges) else None
    hint = "write split(n) or ranges like 0..6, 6..12"
    if isinstance(parsed, E.Call):
        hint = did_you_mean(parsed.name, ["split"]) or hint
    b.error(node.loc, f"invalid blocks '{node.value}'", hint)
    return None


def _range(b: _Builder, node: Scalar, r: E.RangeExpr, path: Path) -> LayerRange | None:
    loc = node.loc_at(r.offset)
    b.smap.set(path, loc)
    if r.stop <= r.start:
        b.error(loc, f"empty layer range {r.start}..{r.stop}", "ranges are half-open start..stop with stop > start")
        return None
    return LayerRange(r.start, r.stop)


def _is_int(e: E.Expr) -> bool:
    return isinstance(e, E.Atom) and e.kind == "number" and isinstance(e.value, int)


# ---- tokenizer, hybrid, task -----------------------------------------------------------------
def _tokenizer(b: _Builder, node: Scalar | None, names: tuple[str, ...]) -> str:
    if node is None:
        return names[0] if names else ""
    value = str(node.value).strip()
    if not value:  # e.g. "\N" (U+0085), which YAML reads as a line break and Python strips as whitespace
        b.error(node.loc, "tokenizer is blank", "name a component, bytes, hf:<id> or a tokenizer path")
    return value


def _hybrid(b: _Builder, node: Mapping | None, names: tuple[str, ...]) -> Hybrid:
    node = node or Mapping(Location(b.smap.file, 1, 1))
    for k, v in node:
        b.record(("hybrid", k.value), v)
    width_node = node.get("width")
    width = None if width_node is None or width_node.value == "max" else int(width_node.value)
    projectors = _projectors(b, node.get("projector"), names)
    embeddings = _mode_or_component(b, node.get("embeddings"), "embeddings", names)
    head = _mode_or_component(b, node.get("head"), "head", names)
    mixture = _mixture(b, node.get("mixture"))
    return Hybrid(width, projectors, embeddings, head, mixture, _budget(b, node.get("budget")))


def _budget(b: _Builder, node: Mapping | None) -> Budget | None:
    """``{measure: amount}``, one measure (the schema has checked the keys and that amounts are numbers
    or strings); an amount is a positive number or a positive multiple written ``0.6x``."""
    if node is None or not isinstance(node, Mapping):
        return None
    items = list(node)
    if not items:
        return None  # the schema has said so
    if len(items) > 1:
        b.error(items[1][0].loc, "hybrid.budget limits one measure", f"keep one of {', '.join(k.value for k, _ in items)}")
        return None
    key, value = items[0]
    if not isinstance(value, Scalar) or key.value not in BUDGET_MEASURES:
        return None  # the schema has said what is wrong
    b.smap.set(("hybrid", "budget", key.value), value.loc)
    where = f"hybrid.budget.{key.value}"
    if isinstance(value.value, str):  # 0.6x, or a number YAML read as text (1e9)
        text = value.value.strip()
        relative = text.endswith("x")
        number = _finite_float(text[:-1] if relative else text)
        if number is None or number <= 0:
            b.error(value.loc, f"{where} must be a positive number or a multiple such as 0.6x, not {value.value!r}",
                    "0.6x: 60% of the continuous hybrid's; a number: an absolute limit")
            return None
        return Budget(key.value, number, relative=relative)
    if isinstance(value.value, bool) or not isinstance(value.value, (int, float)) or not math.isfinite(value.value):
        return None  # the schema has said what is wrong
    return Budget(key.value, float(value.value), relative=False)


def _finite_float(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _projectors(b: _Builder, node: Node | None, names: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    if node is None:
        return tuple((n, "linear") for n in names)
    if isinstance(node, Scalar):
        return tuple((n, node.value) for n in names)
    given = {}
    for key, value in node:
        if key.value not in names:
            b.error(key.loc, f"projector for unknown component '{key.value}'",
                    did_you_mean(key.value, names) or f"components: {', '.join(names)}")
            continue
        b.smap.set(("hybrid", "projector", key.value), value.loc)
        given[key.value] = value.value
    return tuple((n, given.get(n, "linear")) for n in names)


def _mode_or_component(b: _Builder, node: Scalar | None, what: str, names: tuple[str, ...]) -> str:
    if node is None:
        return "mix"
    value = str(node.value)
    if value != "mix" and value not in names:
        b.error(node.loc, f"hybrid.{what} must be 'mix' or a component name, not '{value}'",
                did_you_mean(value, ("mix", *names)) or f"components: {', '.join(names)}")
    return value


def _mixture(b: _Builder, node: Scalar | None) -> Mixture:
    if node is None:
        return Mixture("search")
    parsed = b.parse(node, "mixture")
    if parsed is None:
        return Mixture("search")
    if isinstance(parsed, E.Atom) and parsed.value == "search":
        return Mixture("search")
    if isinstance(parsed, E.Call) and parsed.name == "fixed" and len(parsed.args) == 1 and not parsed.kwargs:
        rows = _alpha_rows(b, node, parsed.args[0])
        return Mixture("fixed", alphas=rows) if rows is not None else Mixture("search")
    if isinstance(parsed, E.Call) and parsed.name == "programmed" and len(parsed.args) == 1 and not parsed.kwargs:
        arg = parsed.args[0]
        if isinstance(arg, E.Atom) and arg.kind in ("word", "string"):
            b.smap.set(("hybrid", "mixture", "path"), node.loc_at(arg.offset))
            return Mixture("programmed", path=str(arg.value))
    if isinstance(parsed, E.Call) and parsed.name in ("fixed", "programmed"):  # the right name, wrong arguments
        what, usage = (("one list of rows", "fixed([[a, b], ...]) with one row per block") if parsed.name == "fixed"
                       else ("one file path", "programmed(alphas.json)"))
        b.error(node.loc_at(parsed.offset), f"{parsed.name}(...) takes {what}", f"write {usage}")
        return Mixture("search")
    name = parsed.name if isinstance(parsed, (E.Call,)) else getattr(parsed, "value", "")
    b.error(node.loc, f"invalid mixture '{node.value}'",
            (did_you_mean(name, ["search", "fixed", "programmed"]) + " " if did_you_mean(name, ["search", "fixed", "programmed"]) else "")
            + "write search, fixed([[a, b], ...]) with one row per block, or programmed(<file>)")
    return Mixture("search")


def _alpha_rows(b: _Builder, node: Scalar, arg: E.Expr) -> tuple[tuple[float, ...], ...] | None:
    if not isinstance(arg, E.ListExpr) or not arg.items:
        b.error(node.loc_at(arg.offset), "fixed(...) takes a list of rows, one per block", "e.g. fixed([[0.5, 0.5], [0.2, 0.8]])")
        return None
    rows = []
    ok = True
    for i, row in enumerate(arg.items):
        if isinstance(row, E.Atom) and row.kind == "number" and len(arg.items) >= 1 and all(
            isinstance(x, E.Atom) and x.kind == "number" for x in arg.items
        ):
            b.error(node.loc_at(arg.offset), "fixed(...) takes a list of rows (one per block), not a flat list",
                    f"for one block write fixed([{E.render(arg)[1:-1]}]) -> fixed([[{E.render(arg)[1:-1]}]])")
            return None
        if not isinstance(row, E.ListExpr) or not row.items:
            b.error(node.loc_at(row.offset), f"row {i} of the alphas must be a list of numbers")
            ok = False
            continue
        b.smap.set(("hybrid", "mixture", i), node.loc_at(row.offset))
        values = []
        for j, x in enumerate(row.items):
            b.smap.set(("hybrid", "mixture", i, j), node.loc_at(x.offset))
            if not (isinstance(x, E.Atom) and x.kind == "number") or not math.isfinite(x.value):
                b.error(node.loc_at(x.offset), f"alpha [{i}][{j}] must be a number")
                ok = False
                continue
            values.append(float(x.value))
        rows.append(tuple(values))
    return tuple(rows) if ok else None


def _task(b: _Builder, node: Scalar | None) -> Task:
    if node is None:
        return Task("causal-lm")
    parsed = b.parse(node, "task")
    if parsed is None:
        return Task("causal-lm")
    if isinstance(parsed, E.Atom) and parsed.value in ("causal-lm", "compress"):
        return Task(parsed.value)
    if isinstance(parsed, E.Call) and parsed.name in ("classify", "tag", "match"):
        if len(parsed.args) == 1 and not parsed.kwargs and _is_int(parsed.args[0]) and parsed.args[0].value >= 2:
            return Task(parsed.name, parsed.args[0].value)
        b.error(node.loc_at(parsed.offset), f"{parsed.name}(n) takes the number of classes (>= 2)", f"e.g. {parsed.name}(2)")
        return Task("causal-lm")
    word = parsed.name if isinstance(parsed, E.Call) else str(getattr(parsed, "value", ""))
    b.error(node.loc, f"unknown task '{node.value}'",
            did_you_mean(word, ["causal-lm", "compress", "classify", "tag", "match"])
            or "write causal-lm, compress, classify(n), tag(n) or match(n)")
    return Task("causal-lm")


# ---- calls with signatures -------------------------------------------------------------------
def bind_call(b: _Builder, node: Scalar, parsed: E.Expr, table: dict[str, Signature], what: str) -> tuple[str, tuple] | None:
    """Bind a call expression to a signature: (name, ((param, value), ...)) in signature order."""
    if isinstance(parsed, E.Atom) and parsed.kind == "word" and parsed.value in table:
        parsed = E.Call(parsed.value, (), (), parsed.offset)
    if not isinstance(parsed, E.Call):
        b.error(node.loc, f"invalid {what} '{node.value}'", "known: " + ", ".join(s.usage() for s in table.values()))
        return None
    sig = table.get(parsed.name)
    if sig is None:
        b.error(node.loc_at(parsed.offset), f"unknown {what} '{parsed.name}'",
                did_you_mean(parsed.name, table) or "known: " + ", ".join(table))
        return None
    values: dict[str, Any] = {}
    ok = True
    if len(parsed.args) > len(sig.params):
        b.error(node.loc_at(parsed.args[len(sig.params)].offset), f"{sig.name}() takes at most {len(sig.params)} arguments",
                f"usage: {sig.usage()}")
        return None
    for param, arg in zip(sig.params, parsed.args):
        values[param.name] = (arg, arg.offset)
    for key, arg, offset in parsed.kwargs:
        if sig.param(key) is None:
            b.error(node.loc_at(offset), f"{sig.name}() has no argument '{key}'",
                    did_you_mean(key, [p.name for p in sig.params]) or f"usage: {sig.usage()}")
            ok = False
            continue
        if key in values:
            b.error(node.loc_at(offset), f"argument '{key}' of {sig.name}() given twice")
            ok = False
            continue
        values[key] = (arg, arg.offset)
    bound = []
    for param in sig.params:
        if param.name not in values:
            if param.required:
                b.error(node.loc_at(parsed.offset), f"{sig.name}() needs the argument '{param.name}'", f"usage: {sig.usage()}")
                ok = False
            else:
                bound.append((param.name, param.default))
            continue
        arg, offset = values[param.name]
        value = _coerce(b, node, offset, sig, param, arg)
        if value is _BAD:
            ok = False
        bound.append((param.name, value))
    return (sig.name, tuple(bound)) if ok else None


_BAD = object()


# why a bound holds, for the arguments whose bounds are not plain sense
_FLOAT32 = "float32 arithmetic divides the logits by a temperature; outside 1e-4 .. 1e4 it overflows or underflows"
RANGE_HINTS = {"tau": _FLOAT32, "tau_end": _FLOAT32,
               "temperature": "float32 arithmetic divides the logits by the temperature and kl multiplies its loss by "
                              "the square; outside 1e-4 .. 1e4 that overflows or underflows",
               "ce": "a weight past 1e4 overflows the summed cross-entropy in float32"}


def _coerce(b: _Builder, node: Scalar, offset: int, sig: Signature, param, arg: E.Expr) -> Any:
    loc = node.loc_at(offset)
    where = f"argument '{param.name}' of {sig.name}()"
    if not isinstance(arg, E.Atom):
        b.error(loc, f"{where} must be a single value")
        return _BAD
    value = arg.value
    if param.type == "bool":
        if arg.kind == "word" and value in ("true", "false"):
            return value == "true"
        b.error(loc, f"{where} must be true or false, not {value!r}")
        return _BAD
    if param.type in ("int", "float"):
        if arg.kind != "number" or (param.type == "int" and not isinstance(value, int)):
            b.error(loc, f"{where} must be {'a whole number' if param.type == 'int' else 'a number'}, not {value!r}")
            return _BAD
        if not math.isfinite(value):
            b.error(loc, f"{where} must be finite")
            return _BAD
        positive = param.minimum == 0.0 and param.name in ("lr", "tau", "tau_end", "temperature")  # a rate or temperature of 0 divides by 0
        why = RANGE_HINTS.get(param.name)
        if param.minimum is not None and value < param.minimum or (positive and value <= 0):
            b.error(loc, f"{where} must be {'>' if positive else '>='} {param.minimum:g}, not {value:g}", why)
            return _BAD
        if param.maximum is not None and value > param.maximum:
            b.error(loc, f"{where} must be <= {param.maximum:g}, not {value:g}", why)
            return _BAD
        return float(value) if param.type == "float" else value
    if param.type == "choice":
        if str(value) not in param.choices:
            b.error(loc, f"{where} must be one of {', '.join(param.choices)}, not {value!r}",
                    did_you_mean(str(value), param.choices))
            return _BAD
        return str(value)
    if arg.kind == "number":
        return str(arg.value)
    return str(value)


# ---- train -----------------------------------------------------------------------------------
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # a config attribute name
_STAGE_KEYS_ORDER = ("name", "kind", "init", "train", "data", "search", "distill", "steps", "epochs", "batch_size", "grad_accum",
                     "lr", "weight_decay", "betas", "warmup", "schedule", "grad_clip", "eval_every")


def default_train_groups(kind: str, searched: bool) -> tuple[str, ...]:
    if kind == "align":
        return ("projectors", "embeddings") + (("alphas",) if searched else ())
    if kind == "search":
        return PARAM_GROUPS
    if kind in ("finetune", "retrain", "distill"):
        return ("components", "projectors", "embeddings", "head")
    return ()


def _train(b: _Builder, node: Mapping | None, hybrid: Hybrid) -> Train:
    if node is None:
        return Train()
    for k, v in node:
        b.record(("train", k.value), v)
    seed = node.get("seed")
    data_seed = node.get("data_seed")
    stages_node = node.get("stages")
    stages: list[Stage] = []
    names: dict[str, Location] = {}
    data: DataSource | None = None
    data_known = True  # False after a stage whose data could not be read: the stages after it inherit it
    discretized = False
    for i, item in enumerate(stages_node or ()):
        before = len(b.diags)
        stage = _stage(b, i, item, hybrid, data, discretized, data_known)
        if len(b.diags) > before:
            b.broken.add(("train", "stages", i))
        if stage is None:  # kept in place (the stages' positions locate later checks), trains nothing
            stages.append(Stage(name=str(item.get("name").value), kind="rewind"))
            data_known = False
            continue
        if stage.data is None and stage.trains:
            data_known = False
        if stage.name in names:
            b.error(item.get("name").loc, f"duplicate stage name '{stage.name}'", f"the first is at line {names[stage.name].line}")
        names[stage.name] = item.loc
        if stage.data is not None:
            data = stage.data
        discretized = discretized or stage.kind == "discretize"
        stages.append(stage)
    every = node.get("checkpoint_every")
    baselines = node.get("baselines")
    return Train(seed=int(seed.value) if seed is not None else 0,
                 data_seed=int(data_seed.value) if data_seed is not None else None,
                 checkpoint_every=int(every.value) if every is not None else Train.checkpoint_every,
                 baselines=bool(baselines.value) if baselines is not None else False, stages=tuple(stages))


def _stage(b: _Builder, i: int, node: Mapping, hybrid: Hybrid, prev_data, discretized: bool,
           data_known: bool = True) -> Stage | None:
    base = ("train", "stages", i)
    b.record(base, node)
    for k, v in node:
        b.record(base + (k.value,), v)
    name = str(node.get("name").value)
    kind_node = node.get("kind")
    kind = kind_node.value if kind_node is not None else name
    if kind not in STAGE_KINDS:
        b.error(node.get("name").loc, f"stage '{name}' has no kind",
                f"add kind: one of {', '.join(STAGE_KINDS)}" + (f" ({did_you_mean(name, STAGE_KINDS)})" if did_you_mean(name, STAGE_KINDS) else ""))
        return None
    searched = hybrid.mixture.mode == "search"
    values: dict[str, Any] = {"name": name, "kind": kind}
    init = node.get("init")
    if init is not None:
        values["init"] = str(init.value)
    if kind not in TRAINING_KINDS:
        for key in ("train", "data", "search", "distill", "steps", "epochs", "batch_size", "grad_accum", "lr",
                    "weight_decay", "betas", "warmup", "schedule", "grad_clip", "eval_every"):
            if node.get(key) is not None:
                b.error(node.key_node(key).loc, f"a {kind} stage does not train; '{key}' has no effect here",
                        "remove it, or add a finetune/retrain stage after this one")
        if kind == "discretize" and discretized:
            b.error(node.get("name").loc, "the hybrid is already discretized", "remove the second discretize stage")
        return Stage(**values)
    train_node = node.get("train")
    if train_node is None:
        groups = default_train_groups(kind, searched)
    elif isinstance(train_node, Scalar):
        groups = PARAM_GROUPS if train_node.value == "all" else ()
    else:
        given = {item.value for item in train_node}
        groups = tuple(g for g in PARAM_GROUPS if g in given)
    if "alphas" in groups and (not searched or discretized):
        reason = "the mixture is not searched" if not searched else "the hybrid was discretized by an earlier stage"
        if train_node is not None and not isinstance(train_node, Scalar):
            b.error(train_node.loc, f"stage '{name}' trains alphas, but {reason}",
                    "remove alphas from train, or use mixture: search")
        groups = tuple(g for g in groups if g != "alphas")
    values["train"] = groups
    search_warmup = (None, 0)  # (where, steps) of the search's warmup=, checked against the stage's steps below
    if kind == "search":
        if not searched:
            b.error(node.get("name").loc, f"stage '{name}' searches, but hybrid.mixture is '{hybrid.mixture}'",
                    "use mixture: search, or make this a finetune stage")
        if discretized:
            b.error(node.get("name").loc, f"stage '{name}' searches after the hybrid was discretized",
                    "move the search stage before the discretize stage")
        search_node = node.get("search")
        values["search"] = Search("darts")
        if search_node is not None:
            parsed = b.parse(search_node, "search algorithm")
            bound = bind_call(b, search_node, parsed, SEARCH_ALGORITHMS, "search algorithm") if parsed else None
            if bound is not None:
                args = dict(bound[1])
                kwargs = parsed.kwargs if isinstance(parsed, E.Call) else ()  # (a bare 'darts' is a word)
                if "heldout" in [key for key, _, _ in kwargs] and not args["alternate"]:
                    offset = next(o for key, _, o in kwargs if key == "heldout")
                    b.error(search_node.loc_at(offset), "heldout= has no effect without alternate=true (a joint search "
                            "updates weights and alphas on the same training batch)", "add alternate=true, or remove heldout=")
                warmup_at = next((o for key, _, o in kwargs if key == "warmup"), parsed.offset)
                if args["warmup"] and args["alternate"]:
                    offset = warmup_at
                    b.error(search_node.loc_at(offset), "warmup= needs a joint search (an alternating search already "
                            "gives the weights every other step)", "remove warmup=, or set alternate=false")
                values["search"] = Search(bound[0], lr=args["lr"], alternate=args["alternate"], tau=args.get("tau"),
                                          heldout=args["heldout"], tau_end=args.get("tau_end"), warmup=args["warmup"])
                search_warmup = (search_node.loc_at(warmup_at), args["warmup"])
        else:
            values["search"] = DEFAULT_SEARCH
    elif node.get("search") is not None:
        b.error(node.key_node("search").loc, f"only search stages take 'search' (stage '{name}' is {kind})",
                "remove it, or set kind: search")
    if kind == "distill":
        if not discretized:
            b.error(node.get("name").loc, f"stage '{name}' distills, but no discretize stage comes before it",
                    "the student is the discretized hybrid and the teacher the continuous one before it: add "
                    "{name: discretize} before this stage")
        values["distill"] = DEFAULT_DISTILL
        distill_node = node.get("distill")
        if distill_node is not None:
            parsed = b.parse(distill_node, "distillation loss")
            bound = bind_call(b, distill_node, parsed, DISTILL_LOSSES, "distillation loss") if parsed else None
            if bound is not None:
                values["distill"] = Distill(**dict(bound[1]))
    elif node.get("distill") is not None:
        b.error(node.key_node("distill").loc, f"only distill stages take 'distill' (stage '{name}' is {kind})",
                "remove it, or set kind: distill")
    data_node = node.get("data")
    if data_node is not None:
        parsed = b.parse(data_node, "data source")
        bound = bind_call(b, data_node, parsed, DATA_SOURCES, "data source") if parsed else None
        values["data"] = DataSource(*bound) if bound else None
    else:
        values["data"] = prev_data
        if prev_data is None and data_known:
            b.error(node.get("name").loc, f"stage '{name}' trains but has no data",
                    "add data: text(corpus.txt, block=512), recall(), mad(in-context-recall), ...")
    for key in ("steps", "batch_size", "grad_accum", "lr", "weight_decay", "warmup", "schedule", "grad_clip", "eval_every"):
        v = node.get(key)
        if v is not None:
            values[key] = v.value
    if isinstance(values.get("lr"), int):
        values["lr"] = float(values["lr"])
    if isinstance(values.get("weight_decay"), int):
        values["weight_decay"] = float(values["weight_decay"])
    if isinstance(values.get("grad_clip"), int):
        values["grad_clip"] = float(values["grad_clip"])
    betas = node.get("betas")
    if betas is not None:
        values["betas"] = tuple(float(x.value) for x in betas)
    epochs = node.get("epochs")
    if epochs is not None:
        if node.get("steps") is not None:  # point at whichever of the two comes second
            later = max((node.key_node(k).loc for k in ("steps", "epochs")), key=lambda loc: (loc.line, loc.col))
            b.error(later, f"stage '{name}' gives both 'steps' and 'epochs'",
                    "keep one: steps counts optimizer steps, epochs passes over the training data")
        values["steps"] = None
        values["epochs"] = float(epochs.value)
    values.setdefault("steps", 100)
    if kind == "search" and search_warmup[1] and values["steps"] is not None and search_warmup[1] >= values["steps"]:
        b.error(search_warmup[0], f"warmup={search_warmup[1]} leaves no alpha step in stage '{name}' of "
                f"{values['steps']} steps", f"use warmup= below {values['steps']}, or more steps")
    return Stage(**values)

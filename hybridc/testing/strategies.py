"""Hypothesis strategies for hybrid specs: valid ones, variations of yours, invalid ones with their errors.

``pip install 'hybridc[testing]'`` installs hypothesis. Every strategy draws plain data, the dict a spec's
YAML holds (``hybridc.testing.specs.text`` writes it, ``hybridc.testing.specs.resolve`` validates it):

- ``specs(families=..., directories=...)``: valid specs over the families you name (tiny components built
  from each family's config class through ``init:``) or your own model directories (``from:``), with drawn
  component names and order, block cuts, projector kinds, widths, embeddings and heads, searched, fixed or
  one-hot mixtures, tasks, budgets and training stages;
- ``variations(spec)``: specs that differ from yours in one meaningful way, each a ``Variation`` naming the
  changes ``hybridc diff`` must report;
- ``bad_specs()``: invalid specs, each a ``BadSpec`` with the located error ``validate`` must give;
- for fuzzing the front end: ``yaml_punctuation``, ``yaml_trees``, ``spec_trees``, ``edited_data``,
  ``expressions`` and ``edited_texts`` (arbitrary input: the outcome must be a valid spec or a located
  error, ``hybridc.testing.invariants.front_end_is_total``).

Strategies shrink toward the smallest spec: fewer components and layers, one block, the first family,
projector kind and mixture mode listed.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    from hypothesis import assume
    from hypothesis import strategies as st
except ImportError as err:  # pragma: no cover - the [testing] extra is missing
    raise ImportError("hybridc.testing.strategies needs hypothesis: pip install 'hybridc[testing]'") from err

from ..errors import SpecError
from ..spec.canonical import MODULE_ATTRIBUTES
from .specs import blocks_of, canonical_data, fixed, resolve, rows_of
from .tiny import family_of, tiny_overrides

ATTENTION = ("gpt-neo", "gpt2", "gpt-neox", "llama")
FAMILIES = ATTENTION + ("mamba", "mamba2")  # the default families: the six with hand-written cost formulas
PROJECTORS = ("linear", "linear-skip", "mlp", "mlp-skip", "none")
TASKS = ("causal-lm", "classify(3)", "tag(4)")
BUDGET_MEASURES = ("params", "flops_per_token", "decode_params")  # known for every family (decode_state is not)
VOCAB = 64
# words a component cannot be called: the spec's own (mix, bytes, ...), YAML's, torch module attributes
RESERVED_NAMES = frozenset({"mix", "bytes", "all", "none", "null", "true", "false", "max"}) | MODULE_ATTRIBUTES


def component_names() -> st.SearchStrategy[str]:
    """Component names as users write them (lowercase words), none of the reserved ones."""
    return st.text("abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=6).filter(lambda n: n not in RESERVED_NAMES)


@st.composite
def partitions(draw, layers: int, blocks: int) -> str:
    """Block cuts of ``layers`` layers into ``blocks`` blocks: ``split(n)`` or explicit ranges."""
    if draw(st.booleans()):
        return f"split({blocks})"
    if blocks == 1:
        return f"0..{layers}"
    cuts = sorted(draw(st.lists(st.integers(1, layers - 1), min_size=blocks - 1, max_size=blocks - 1, unique=True)))
    return ranges_text([0, *cuts, layers])


def ranges_text(bounds: Sequence[int]) -> str:
    """``0..a, a..b, ...`` for block boundaries."""
    return ", ".join(f"{a}..{b}" for a, b in zip(bounds, bounds[1:]))


@st.composite
def simplex_row(draw, m: int) -> list[float]:
    """A row of ``m`` mixture weights on the simplex (exactly: the last is 1 minus the others)."""
    weights = draw(st.lists(st.integers(0, 4), min_size=m, max_size=m).filter(any))
    total = sum(weights)
    row = [w / total for w in weights]
    row[-1] = 1.0 - sum(row[:-1])
    return [round(a, 12) for a in row]


def stage_length(draw, most: int) -> dict:
    """A training stage's length: ``steps``, or sometimes ``epochs`` (whole or fractional)."""
    if draw(st.integers(0, 3)) == 0:
        return {"epochs": draw(st.sampled_from([0.25, 0.5, 1, 1.5, 2, 3]))}
    return {"steps": draw(st.integers(1, most))}


# ---- valid specs -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _InitFamily:
    """A family as ``specs`` draws it: the (width, heads) pairs its tiny models accept, its tiny extras."""

    name: str
    sizes: tuple[tuple[int, int | None], ...]
    extra: tuple[tuple[str, Any], ...]
    max_length: bool


def _init_family(name: str, widths: Sequence[int], heads: Sequence[int], vocab: int) -> _InitFamily:
    family = family_of(name)
    extra = tiny_overrides(family)
    fixed_width = extra.pop("hidden_size", None)
    for key in ("layers", "heads", "vocab_size", "max_length"):
        extra.pop(key, None)
    with_heads = bool(family.keys.heads) and family.has_attention
    sizes = []
    for width in [fixed_width] if fixed_width else widths:
        for h in heads if with_heads else [None]:
            if h and width % h:
                continue
            common = {"hidden_size": width, "layers": 2, "heads": h, "vocab_size": vocab,
                      "max_length": 64 if family.keys.max_length else None}
            if not family.config_problems(family.init_config(common, extra)):
                sizes.append((width, h))
    if not sizes:
        raise ValueError(f"family {name!r} accepts none of the widths {list(widths)} with heads {list(heads)}; "
                         "pass widths= and heads= it can build")
    return _InitFamily(family.name, tuple(sizes), tuple(extra.items()), bool(family.keys.max_length))


@dataclass(frozen=True)
class _Directory:
    """A user's model directory as ``specs`` draws it."""

    name: str
    path: str
    layers: int
    vocab: int
    family: str


def _directory(name: str, path: str | Path) -> _Directory:
    from ..components.registry import family_for_config
    from ..spec.resolve import read_config_json

    config = read_config_json(Path(path) / "config.json")
    family = family_for_config(config)
    if family is None:
        raise ValueError(f"{path}: its config.json names no family hybridc knows (model_type "
                         f"{config.get('model_type')!r})")
    shape = family.shape(config)
    return _Directory(name, str(path), shape.num_layers, shape.vocab_size, family.name)


def specs(families: Sequence[str] = FAMILIES, *, directories: Mapping[str, str | Path] | None = None,
          components: tuple[int, int] = (1, 3), layers: tuple[int, int] = (1, 4),
          widths: Sequence[int] = (16, 24, 32), heads: Sequence[int] = (2, 4), vocab: int = VOCAB,
          projectors: Sequence[str] = PROJECTORS, mixtures: Sequence[str] = ("search", "fixed", "one-hot"),
          tasks: Sequence[str] = TASKS, stages: bool = True, budgets: bool = False,
          names: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[dict]:
    """Valid specs as data.

    Components are tiny from-scratch models of ``families`` (``init:``, built from each family's config class;
    ``widths`` and ``heads`` it accepts, ``layers`` within the range) and/or the model ``directories`` given
    ({name: save_pretrained directory}, as ``from:``; relative paths resolve against the ``base_dir`` you
    validate with). ``components`` bounds how many; ``mixtures`` draws from ``search``, ``fixed`` (rows on the
    simplex) and ``one-hot`` (one component's alpha 1 in every block, with its embedding, head and
    tokenizer: the one-hot invariant's setting); ``budgets`` adds ``hybrid.budget`` sometimes (multiples of
    the continuous hybrid's cost, which every discretization fits); ``stages`` adds training stages
    sometimes (causal-lm). ``names`` draws component names (default: ``component_names()``).
    """
    pool = [_init_family(f, widths, heads, vocab) for f in families]
    dirs = [_directory(n, p) for n, p in (directories or {}).items()]
    if not pool and not dirs:
        raise ValueError("specs() needs families or directories to draw components from")
    low, high = components
    if low < 1 or high < low:
        raise ValueError(f"components=(low, high) needs 1 <= low <= high, not {components}")
    return _specs(pool, dirs, low, high, layers, vocab, tuple(projectors), tuple(mixtures), tuple(tasks), stages,
                  budgets, names or component_names())


@st.composite
def _specs(draw, pool, dirs, low, high, layer_range, vocab, projectors, mixtures, tasks, stages, budgets,
           name_strategy) -> dict:
    m = draw(st.integers(low, high))
    chosen_dirs = draw(st.lists(st.sampled_from(dirs), unique_by=lambda d: d.name, max_size=min(m, len(dirs)),
                                min_size=0 if pool else 1)) if dirs else []
    n_init = m - len(chosen_dirs) if pool else 0
    taken = {d.name for d in chosen_dirs}
    init_names = draw(st.lists(name_strategy.filter(lambda n: n not in taken), min_size=n_init, max_size=n_init,
                               unique=True))
    names = draw(st.permutations([d.name for d in chosen_dirs] + init_names))
    dir_of = {d.name: d for d in chosen_dirs}
    if chosen_dirs:  # the hybrid's tokenizer: the directory with the smallest vocabulary (it covers the others)
        tok_dir = min(chosen_dirs, key=lambda d: d.vocab)
        vocab = tok_dir.vocab
    family_of_init = {n: draw(st.sampled_from(pool)) for n in init_names}
    layers = {n: dir_of[n].layers if n in dir_of else draw(st.integers(*layer_range)) for n in names}
    blocks = draw(st.integers(1, min(layers.values())))
    components: dict[str, dict] = {}
    widths: dict[str, int] = {}
    for name in names:
        if name in dir_of:
            components[name] = {"from": dir_of[name].path}
        else:
            family = family_of_init[name]
            width, h = draw(st.sampled_from(family.sizes))
            init: dict[str, Any] = {"family": family.name, "hidden_size": width, "layers": layers[name],
                                    "vocab_size": vocab}
            if h is not None:
                init["heads"] = h
            if family.max_length:
                init["max_length"] = 64
            init.update(dict(family.extra))
            components[name] = {"init": init}
            widths[name] = width
        components[name]["blocks"] = draw(partitions(layers[name], blocks))
    # with several directories, only the tokenizer's own may lend its embedding or head (the others' tokenizers
    # are unknown here); from-scratch components have none to check
    lenders = [n for n in names if n not in dir_of or (len(chosen_dirs) == 1 or n == tok_dir.name)]
    mode = draw(st.sampled_from(mixtures))
    chosen = draw(st.sampled_from(lenders))
    hybrid: dict[str, Any] = {}
    if draw(st.booleans()):
        hybrid["projector"] = draw(st.sampled_from(projectors))
    else:
        hybrid["projector"] = {n: draw(st.sampled_from(projectors)) for n in names}
    if widths and len(widths) == len(names) and draw(st.booleans()):
        hybrid["width"] = max(widths.values()) + draw(st.sampled_from([0, 8]))
    if mode == "search":
        hybrid["mixture"] = "search"
    elif mode == "fixed":
        hybrid["mixture"] = f"fixed({[draw(simplex_row(len(names))) for _ in range(blocks)]})"
    else:
        row = [1.0 if n == chosen else 0.0 for n in names]
        hybrid["mixture"] = f"fixed({[row] * blocks})"
    mixable = len(lenders) == len(names)
    # one-hot mixtures take the chosen component's embedding, head and tokenizer (the invariant's setting)
    sources = ["mix", chosen] if mode == "one-hot" else (["mix"] if mixable else []) + lenders
    for key in ("embeddings", "head"):
        hybrid[key] = draw(st.sampled_from(sources))
    if mode == "one-hot":
        tokenizer = chosen
    elif chosen_dirs:
        tokenizer = tok_dir.name
    else:
        tokenizer = draw(st.sampled_from(names))
    if budgets and draw(st.booleans()):
        hybrid["budget"] = {draw(st.sampled_from(BUDGET_MEASURES)): draw(st.sampled_from(["1x", "1.5x", "2x"]))}
    spec = {"hybridc": 1, "name": "generated", "tokenizer": tokenizer, "components": components, "hybrid": hybrid}
    task = "causal-lm" if mode == "one-hot" else draw(st.sampled_from(tasks))
    if task != "causal-lm" or draw(st.booleans()):
        spec["task"] = task
    if stages and task == "causal-lm" and draw(st.booleans()):
        first = "search" if mode == "search" else "finetune"
        train_stages = [{"name": first, "data": "recall(vocab=16, length=16)", **stage_length(draw, 50),
                         "lr": draw(st.sampled_from([1e-4, 3e-4, 1e-3]))}]
        if draw(st.booleans()):
            train_stages += [{"name": "discretize"}, {"name": "retrain", **stage_length(draw, 20)}]
        spec["train"] = {"seed": draw(st.integers(0, 5)), "stages": train_stages}
    return spec


# ---- variations of a spec --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variation:
    """A spec that differs from a base spec in one meaningful way. ``changes``: the paths ``hybridc diff``
    names for it (``hybrid.projector.attn``, ``train.stages[search].lr``, ...); ``what``: in words."""

    spec: dict
    changes: tuple[str, ...]
    what: str

    def __str__(self) -> str:
        return self.what


Choose = Callable[[Sequence[Any]], Any]  # picks one of a list of options (a draw, or the first when probing)


@dataclass(frozen=True)
class _Base:
    data: dict
    names: tuple[str, ...]
    layers: dict[str, int]
    ranges: dict[str, tuple[int, ...]]  # block boundaries
    hidden: dict[str, int]
    families: dict[str, str]
    blocks: int
    widest: int

    def init(self, name: str) -> dict | None:
        return self.data["components"][name].get("init")

    def training_stages(self) -> list[int]:
        return [i for i, s in enumerate(self.data["train"]["stages"]) if "train" in s]


def _rows(m: int) -> list[list[float]]:
    """Alpha rows of ``m`` components to choose from: uniform, one-hot on each, and a few uneven ones."""
    uniform = [1.0 / m] * m
    uniform[-1] = 1.0 - sum(uniform[:-1])
    rows = [uniform] + [[1.0 if j == i else 0.0 for j in range(m)] for i in range(m)]
    if m > 1:
        rows += [[0.75] + [0.25 / (m - 1)] * (m - 1), [0.25 / (m - 1)] * (m - 1) + [0.75]]
    return rows


def _projectors_of(data: dict, names: Sequence[str]) -> dict[str, str]:
    kinds = data["hybrid"]["projector"]
    return {n: kinds for n in names} if isinstance(kinds, str) else dict(kinds)


def _v_projector(choose: Choose, d: dict, b: _Base):
    c = choose(b.names)
    kinds = _projectors_of(d, b.names)
    new = choose([k for k in PROJECTORS if k != kinds[c]])
    old, kinds[c] = kinds[c], new
    d["hybrid"]["projector"] = kinds
    return [f"hybrid.projector.{c}"], f"component {c}'s projector {old} -> {new}"


def _v_width(choose: Choose, d: dict, b: _Base):
    current = d["hybrid"]["width"]
    options = [b.widest + 8, b.widest + 16] if current == "max" else [v for v in ("max", current + 8) if v != current]
    d["hybrid"]["width"] = new = choose(options)
    return ["hybrid.width"], f"width {current} -> {new}"


def _v_source(key: str):
    def vary(choose: Choose, d: dict, b: _Base):
        current = d["hybrid"][key]
        d["hybrid"][key] = new = choose([s for s in ("mix", *b.names) if s != current])
        return [f"hybrid.{key}"], f"{key} {current} -> {new}"
    return vary


def _v_mixture(choose: Choose, d: dict, b: _Base):
    current = d["hybrid"]["mixture"]
    if current == "search":
        d["hybrid"]["mixture"] = fixed([choose(_rows(len(b.names)))] * b.blocks)
    else:
        d["hybrid"]["mixture"] = "search"
    return ["hybrid.mixture"], f"mixture {current} -> {d['hybrid']['mixture']}"


def _v_alpha_row(choose: Choose, d: dict, b: _Base):
    rows = rows_of(d["hybrid"]["mixture"])
    i = choose(range(len(rows)))
    old, rows[i] = rows[i], choose([r for r in _rows(len(b.names)) if r != rows[i]])
    d["hybrid"]["mixture"] = fixed(rows)
    return [f"hybrid.mixture[{i}]"], f"alpha row {i} {old} -> {rows[i]}"


def _cuts(layers: int, blocks: int, most: int = 40) -> list[tuple[int, ...]]:
    """Block boundaries of ``layers`` layers in ``blocks`` blocks (at most ``most`` of them, spread)."""
    every = [(0, *c, layers) for c in itertools.combinations(range(1, layers), blocks - 1)]
    step = max(1, len(every) // most)
    return every[::step]


def _v_cut(choose: Choose, d: dict, b: _Base):
    c = choose([n for n in b.names if b.layers[n] > b.blocks])
    new = choose([cut for cut in _cuts(b.layers[c], b.blocks) if cut != b.ranges[c]])
    d["components"][c]["blocks"] = ranges_text(new)
    return [f"components.{c}.blocks"], f"component {c}'s blocks {ranges_text(b.ranges[c])} -> {ranges_text(new)}"


def _v_block_count(choose: Choose, d: dict, b: _Base):
    n = choose([k for k in range(1, min(b.layers.values()) + 1) if k != b.blocks])
    for c in b.names:
        d["components"][c]["blocks"] = f"split({n})"
    return [f"components.{c}.blocks" for c in b.names], f"{b.blocks} blocks -> {n}"


def _v_order(choose: Choose, d: dict, b: _Base):
    order = choose([p for p in itertools.permutations(b.names) if p != b.names][:12])
    d["components"] = {n: d["components"][n] for n in order}
    rows = rows_of(d["hybrid"]["mixture"])
    if rows is not None:  # the same model: the alphas follow their components
        index = {n: j for j, n in enumerate(b.names)}
        d["hybrid"]["mixture"] = fixed([[row[index[n]] for n in order] for row in rows])
    return ["components (mixing order)"], f"components in the order {', '.join(order)}"


def _v_task(choose: Choose, d: dict, b: _Base):
    current = d["task"]
    d["task"] = new = choose([t for t in TASKS if t != current])
    return ["task"], f"task {current} -> {new}"


def _v_train_key(key: str, options: Callable[[Any], list]):
    def vary(choose: Choose, d: dict, b: _Base):
        current = d["train"].get(key)
        new = choose([v for v in options(current) if v != current])
        if new is None:
            d["train"].pop(key)
        else:
            d["train"][key] = new
        return [f"train.{key}"], f"train.{key} {current} -> {new}"
    return vary


_STAGE_OPTIONS: dict[str, Callable[[Any], list]] = {
    "steps": lambda v: [v + 1, v * 2],
    "epochs": lambda v: [v * 2, v / 2],
    "lr": lambda v: [v * 2, v / 2],
    "batch_size": lambda v: [v * 2, max(1, v // 2)],
    "warmup": lambda v: [v + 1],
    "weight_decay": lambda v: [round(v + 0.01, 6), 0.0],
    "grad_clip": lambda v: [v * 2, v / 2],
    "schedule": lambda v: ["linear", "cosine", "constant"],
    "eval_every": lambda v: [v + 1],
}


def _v_stage(choose: Choose, d: dict, b: _Base):
    i = choose(b.training_stages())
    stage = d["train"]["stages"][i]
    key = choose([k for k in _STAGE_OPTIONS if k in stage and stage[k] is not None])
    old = stage[key]
    stage[key] = choose([v for v in _STAGE_OPTIONS[key](old) if v != old])
    return [f"train.stages[{stage['name']}].{key}"], f"stage {stage['name']}'s {key} {old} -> {stage[key]}"


def _v_stage_added(choose: Choose, d: dict, b: _Base):
    taken = {s["name"] for s in d["train"]["stages"]}
    name = next(f"extra{i}" if i else "extra" for i in range(len(taken) + 1) if (f"extra{i}" if i else "extra") not in taken)
    d["train"]["stages"].append({"name": name, "kind": "finetune", "steps": choose([1, 3])})
    return [f"train.stages[{name}]"], f"a finetune stage {name} added"


def _v_init(choose: Choose, d: dict, b: _Base):
    c = choose([n for n in b.names if b.init(n) is not None])
    family = family_of(b.families[c])
    init = d["components"][c]["init"]
    keys = [k for k in ("initializer_range", "hidden_size") if k == "hidden_size" or k in family.known_keys()]
    key = choose(keys)
    old = init.get(key)
    if key == "hidden_size":
        heads = init.get("heads") or 1
        new = choose([v for v in (old * 2, old + 2 * heads, old - heads) if v > 0 and v % heads == 0 and v != old])
    else:
        new = choose([v for v in (0.01, 0.05) if v != old])
    init[key] = new
    return [f"components.{c}.init.{key}"], f"component {c}'s {key} {old} -> {new}"


def _v_trust(choose: Choose, d: dict, b: _Base):
    c = choose(b.names)
    component = d["components"][c]
    component["trust_remote_code"] = not component.get("trust_remote_code", False)
    return [f"components.{c}.trust_remote_code"], f"component {c}'s trust_remote_code -> {component['trust_remote_code']}"


def _budget_meaning(budget: dict | None) -> tuple | None:
    """A budget as what it means: ``{params: 2x}`` and ``{params: 2.0x}`` are one budget."""
    if not budget:
        return None
    (measure, amount), = budget.items()
    text = str(amount)
    return measure, float(text.rstrip("x")), text.endswith("x")


def _v_budget(choose: Choose, d: dict, b: _Base):
    current = d["hybrid"].get("budget")
    options = [{m: a} for m in BUDGET_MEASURES for a in ("1x", "2x")]
    new = choose([o for o in options if _budget_meaning(o) != _budget_meaning(current)] + ([None] if current else []))
    if new is None:
        d["hybrid"].pop("budget")
    else:
        d["hybrid"]["budget"] = new
    return ["hybrid.budget"], f"budget {current} -> {new}"


def _v_name(choose: Choose, d: dict, b: _Base):
    old = d["name"]
    d["name"] = new = choose([f"{old}-v2", f"{old}-b"])
    return ["name"], f"name {old} -> {new}"


# kind -> (applies to the base?, vary)
VARIATIONS: dict[str, tuple[Callable[[_Base], bool], Callable[[Choose, dict, _Base], tuple[list[str], str]]]] = {
    "projector": (lambda b: True, _v_projector),
    "width": (lambda b: True, _v_width),
    "embeddings": (lambda b: True, _v_source("embeddings")),
    "head": (lambda b: True, _v_source("head")),
    "mixture": (lambda b: b.data["hybrid"]["mixture"] == "search" or rows_of(b.data["hybrid"]["mixture"]) is not None,
                _v_mixture),
    "alpha-row": (lambda b: rows_of(b.data["hybrid"]["mixture"]) is not None and len(b.names) > 1, _v_alpha_row),
    "blocks": (lambda b: any(b.layers[n] > b.blocks for n in b.names) and b.blocks > 1, _v_cut),
    "block-count": (lambda b: b.data["hybrid"]["mixture"] == "search" and min(b.layers.values()) > 1, _v_block_count),
    "order": (lambda b: len(b.names) > 1, _v_order),
    "task": (lambda b: True, _v_task),
    "seed": (lambda b: True, _v_train_key("seed", lambda v: [v + 1, v + 2])),
    "data-seed": (lambda b: True, _v_train_key("data_seed", lambda v: [None, 7] if v is not None else [7, 8])),
    "checkpoint-every": (lambda b: True, _v_train_key("checkpoint_every", lambda v: [v * 2, max(1, v // 2)])),
    "baselines": (lambda b: True, _v_train_key("baselines", lambda v: [not v])),
    "stage": (lambda b: bool(b.training_stages()), _v_stage),
    "stage-added": (lambda b: bool(b.training_stages()), _v_stage_added),
    "init": (lambda b: any(b.init(n) is not None for n in b.names), _v_init),
    "trust-remote-code": (lambda b: True, _v_trust),
    "budget": (lambda b: True, _v_budget),
    "name": (lambda b: True, _v_name),
}


def _base(spec, base_dir) -> tuple[_Base, Path | None]:
    if isinstance(spec, Path) and base_dir is None:
        base_dir = spec.parent
    data = canonical_data(spec, base_dir)
    rs = resolve(data, base_dir)
    names = rs.names
    base = _Base(
        data=data, names=names,
        layers={n: rs.component(n).num_layers for n in names},
        ranges={n: (rs.component(n).ranges[0].start, *(r.stop for r in rs.component(n).ranges)) for n in names},
        hidden={n: rs.component(n).hidden_size for n in names},
        families={n: rs.component(n).family for n in names},
        blocks=rs.num_blocks, widest=max(rs.component(n).hidden_size for n in names))
    return base, base_dir


def _valid(data: dict, base_dir) -> bool:
    try:
        resolve(data, base_dir)
    except SpecError:
        return False
    return True


def variations(spec: dict | str | Path, base_dir: str | Path | None = None, *,
               kinds: Sequence[str] | None = None, probe: bool = True) -> st.SearchStrategy[Variation]:
    """Specs that differ from ``spec`` (data, YAML text or a file) in one meaningful way: a projector kind, the
    width, the embedding or head, the mixture or one alpha row, a component's block cuts or the number of
    blocks, the components' order, the task, a seed, a stage setting or a stage added, a from-scratch
    component's setting, trust_remote_code, the budget, the name (``VARIATIONS``; ``kinds`` narrows them).

    Each is valid (resolved with ``base_dir``, default the file's directory) and in canonical form; the base
    spec must be valid. With ``probe``, kinds whose simplest variation of this spec is invalid are left out
    up front (shrinking then ends at a valid kind; it costs a validation per kind when the strategy is made);
    without, invalid draws are only rejected as they come."""
    base, base_dir = _base(spec, base_dir)
    unknown = sorted(set(kinds or ()) - set(VARIATIONS))
    if unknown:
        raise ValueError(f"unknown variation kinds {unknown}; known: {', '.join(VARIATIONS)}")

    def valid_kind(kind: str) -> bool:  # the kind's simplest instance (what shrinking ends at) is valid
        data = copy.deepcopy(base.data)
        try:
            VARIATIONS[kind][1](lambda options: list(options)[0], data, base)
        except (IndexError, ValueError, KeyError, TypeError):
            return False
        return _valid(data, base_dir)

    available = [k for k, (applies, _) in VARIATIONS.items()
                 if (kinds is None or k in kinds) and applies(base) and (not probe or valid_kind(k))]
    if not available:
        raise ValueError("no variation of this spec is valid" + (f" among {list(kinds)}" if kinds else ""))

    @st.composite
    def draw_variation(draw) -> Variation:
        kind = draw(st.sampled_from(available))
        data = copy.deepcopy(base.data)

        def choose(options: Sequence[Any]) -> Any:
            options = list(options)
            assume(options)
            return draw(st.sampled_from(options))

        changes, what = VARIATIONS[kind][1](choose, data, base)
        assume(_valid(data, base_dir))
        return Variation(data, tuple(changes), what)

    return draw_variation()


# ---- invalid specs -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BadSpec:
    """An invalid spec and the error it must give: ``validate`` reports an error on the line where ``at``
    (a path in the spec: keys and list indexes) is written, whose message contains ``message``."""

    spec: dict
    at: tuple
    message: str
    what: str

    def __str__(self) -> str:
        return self.what


def _m_unknown_component_key(choose: Choose, d: dict):
    c = choose(list(d["components"]))
    d["components"][c]["blokcs"] = "split(1)"
    return ("components", c, "blokcs"), "unknown key 'blokcs'", f"a misspelt key in component {c}"


def _m_unknown_family(choose: Choose, d: dict):
    c = choose([n for n, v in d["components"].items() if "init" in v])
    d["components"][c]["init"]["family"] = "transformerxl"
    return ("components", c, "init"), "unknown family", f"component {c} of an unknown family"


def _m_range_outside(choose: Choose, d: dict):
    c = choose(list(d["components"]))
    layers = _layers(d, c)
    blocks = blocks_of(d)
    bounds = [0, *range(1, blocks), layers + 2] if blocks > 1 else [0, layers + 2]
    d["components"][c]["blocks"] = ranges_text(bounds)
    return ("components", c, "blocks"), f"outside '{c}'", f"component {c}'s last range past its {layers} layers"


def _m_colon_range(choose: Choose, d: dict):
    c = choose(list(d["components"]))
    layers = _layers(d, c)
    d["components"][c]["blocks"] = f"0:{layers}"
    return ("components", c, "blocks"), "invalid blocks", f"component {c}'s range written with a colon"


def _m_narrow_width(choose: Choose, d: dict):
    d["hybrid"]["width"] = 1
    return ("hybrid", "width"), "narrower", "a width narrower than the components"


def _m_bad_source(key: str):
    def mutate(choose: Choose, d: dict):
        d["hybrid"][key] = "not-a-component"
        return ("hybrid", key), "must be 'mix' or a component name", f"{key} from no component"
    return mutate


def _m_bad_projector(choose: Choose, d: dict):
    d["hybrid"]["projector"] = "lineer"
    return ("hybrid", "projector"), "must be a projector kind", "a misspelt projector kind"


def _m_one_class(choose: Choose, d: dict):
    d["task"] = "classify(1)"
    return ("task",), "number of classes", "a classifier of one class"


def _m_version(choose: Choose, d: dict):
    d["hybridc"] = 3
    return ("hybridc",), "must be 1", "spec version 3"


def _m_negative_seed(choose: Choose, d: dict):
    d.setdefault("train", {})["seed"] = -1
    return ("train", "seed"), ">= 0", "a negative seed"


def _m_string_layers(choose: Choose, d: dict):
    c = choose([n for n, v in d["components"].items() if "init" in v])
    d["components"][c]["init"]["layers"] = "four"
    return ("components", c, "init", "layers"), "must be an integer", f"component {c}'s layers as a word"


def _m_unknown_init_key(choose: Choose, d: dict):
    c = choose([n for n, v in d["components"].items() if "init" in v])
    d["components"][c]["init"]["not_a_config_key"] = 1
    return ("components", c, "init"), "unknown key 'not_a_config_key'", f"component {c}'s init with an unknown key"


def _m_off_simplex(choose: Choose, d: dict):
    rows = rows_of(d["hybrid"]["mixture"])
    i = choose(range(len(rows)))
    rows[i] = [0.7] * len(rows[i])
    d["hybrid"]["mixture"] = fixed(rows)
    return ("hybrid", "mixture"), "sum", f"alpha row {i} off the simplex"


def _m_negative_lr(choose: Choose, d: dict):
    stages = d["train"]["stages"]
    i = choose([i for i, s in enumerate(stages) if s.get("name") not in ("discretize", "rewind")])
    stages[i]["lr"] = -1
    return ("train", "stages", i, "lr"), "must be > 0", f"stage {i}'s learning rate negative"


def _m_misspelt_top_key(choose: Choose, d: dict):
    d["hybird"] = d.pop("hybrid")
    return ("hybird",), "unknown key 'hybird'", "'hybrid' misspelt"


def _m_heads(choose: Choose, d: dict):
    c = choose([n for n, v in d["components"].items() if "heads" in v.get("init", {})])
    init = d["components"][c]["init"]
    init["heads"] = next(h for h in (3, 5, 7, 9, 11) if init["hidden_size"] % h)
    return ("components", c, "init"), f"not divisible by its {init['heads']} attention heads", \
        f"component {c}'s width not divisible by its heads"


def _m_missing_name(choose: Choose, d: dict):
    del d["name"]
    return (), "missing the required key 'name'", "no name"


def _layers(d: dict, c: str) -> int:
    component = d["components"][c]
    if "init" in component:
        return int(component["init"]["layers"])
    from ..components.registry import family_for_config
    from ..spec.resolve import read_config_json

    config = read_config_json(Path(component["from"]) / "config.json")
    return family_for_config(config).shape(config).num_layers


def _inits(d: dict) -> bool:
    return any("init" in v for v in d["components"].values())


# kind -> (applies to the spec?, mutate)
MISTAKES: dict[str, tuple[Callable[[dict], bool], Callable[[Choose, dict], tuple[tuple, str, str]]]] = {
    "unknown-component-key": (lambda d: True, _m_unknown_component_key),
    "unknown-family": (_inits, _m_unknown_family),
    "range-outside": (lambda d: all("init" in v for v in d["components"].values()), _m_range_outside),
    "colon-range": (lambda d: all("init" in v for v in d["components"].values()), _m_colon_range),
    "narrow-width": (lambda d: True, _m_narrow_width),
    "bad-embeddings": (lambda d: True, _m_bad_source("embeddings")),
    "bad-head": (lambda d: True, _m_bad_source("head")),
    "bad-projector": (lambda d: True, _m_bad_projector),
    "one-class": (lambda d: True, _m_one_class),
    "version": (lambda d: True, _m_version),
    "negative-seed": (lambda d: True, _m_negative_seed),
    "string-layers": (_inits, _m_string_layers),
    "unknown-init-key": (_inits, _m_unknown_init_key),
    "off-simplex": (lambda d: rows_of(d.get("hybrid", {}).get("mixture")) is not None, _m_off_simplex),
    "negative-lr": (lambda d: any(s.get("name") not in ("discretize", "rewind")
                                  for s in d.get("train", {}).get("stages", [])), _m_negative_lr),
    "misspelt-top-key": (lambda d: "hybrid" in d, _m_misspelt_top_key),
    "heads": (lambda d: any("heads" in v.get("init", {}) for v in d["components"].values()), _m_heads),
    "missing-name": (lambda d: "name" in d, _m_missing_name),
}


def bad_specs(spec: dict | str | Path | None = None, base_dir: str | Path | None = None, *,
              kinds: Sequence[str] | None = None, **specs_options: Any) -> st.SearchStrategy[BadSpec]:
    """Invalid specs, each with the located error ``validate`` must give (``BadSpec``): one mistake (``MISTAKES``:
    a misspelt key, an unknown family, a range past a component's layers or written with a colon, a width
    narrower than the components, embeddings or head from no component, a misspelt projector, a classifier of
    one class, a wrong version, a negative seed or learning rate, layers as a word, an unknown config key,
    alphas off the simplex, heads that do not divide the width, no name) made in ``spec`` (data, text or a
    file; in its canonical form) or, without one, in specs drawn by ``specs(**specs_options)``."""
    unknown = sorted(set(kinds or ()) - set(MISTAKES))
    if unknown:
        raise ValueError(f"unknown mistake kinds {unknown}; known: {', '.join(MISTAKES)}")
    names = [k for k in MISTAKES if kinds is None or k in kinds]
    if spec is not None:
        if isinstance(spec, Path) and base_dir is None:
            base_dir = spec.parent
        bases = st.just(canonical_data(spec, base_dir))
    else:
        bases = specs(**specs_options)

    @st.composite
    def draw_bad(draw) -> BadSpec:
        data = copy.deepcopy(draw(bases))
        applicable = [k for k in names if MISTAKES[k][0](data)]
        assume(applicable)
        kind = draw(st.sampled_from(applicable))

        def choose(options: Sequence[Any]) -> Any:
            return draw(st.sampled_from(list(options)))

        at, message, what = MISTAKES[kind][1](choose, data)
        return BadSpec(data, at, message, what)

    return draw_bad()


# ---- fuzzing the front end ----------------------------------------------------------------------------------

YAML_ALPHABET = tuple(":-[]{},&*!|>'\"%@`#?~ \n\t\r.0123456789aeflnrsux_\\") + ("hybridc", "name", "components", "<<")
SPEC_WORDS = ("hybridc", "name", "components", "init", "from", "blocks", "family", "mamba", "gpt2", "hybrid",
              "mixture", "search", "fixed([[1.0]])", "split(1)", "0..1", "train", "stages", "align", "data",
              "recall()", "steps", "epochs", "task", "tokenizer", "bytes", "width", "max", "1:4")
TOP_KEYS = ("hybridc", "name", "components", "hybrid", "task", "tokenizer", "train")


def yaml_punctuation(max_size: int = 80) -> st.SearchStrategy[str]:
    """Text over YAML's punctuation and a few spec words (gets further into the parser than arbitrary text)."""
    return st.lists(st.sampled_from(YAML_ALPHABET), max_size=max_size).map("".join)


def _scalars() -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30),
                     st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30), st.sampled_from(SPEC_WORDS))


def _keys() -> st.SearchStrategy[str]:
    return st.one_of(st.text(max_size=12), st.sampled_from(SPEC_WORDS))


def yaml_trees(max_leaves: int = 40) -> st.SearchStrategy[Any]:
    """Arbitrary YAML data (mappings, lists, scalars of every type, spec words among them)."""
    return st.recursive(_scalars(), lambda children: st.one_of(st.lists(children, max_size=5),
                                                               st.dictionaries(_keys(), children, max_size=5)),
                        max_leaves=max_leaves)


def spec_trees() -> st.SearchStrategy[dict]:
    """Mappings of the spec's top-level keys to arbitrary YAML data."""
    return st.dictionaries(st.sampled_from(TOP_KEYS), yaml_trees(), max_size=len(TOP_KEYS))


def _paths(node: Any, path: tuple = ()) -> list[tuple]:
    out = [path]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, path + (i,))
    return out


def edited_data(spec: Any, edits: tuple[int, int] = (1, 4)) -> st.SearchStrategy[Any]:
    """``spec`` (data) with random edits: a subtree replaced by arbitrary YAML data, a key or list item inserted,
    an entry deleted."""

    @st.composite
    def draw_edited(draw) -> Any:
        data = copy.deepcopy(spec)
        for _ in range(draw(st.integers(*edits))):
            path = draw(st.sampled_from(_paths(data)))
            if not path:
                continue
            parent = data
            for part in path[:-1]:
                parent = parent[part]
            last = path[-1]
            action = draw(st.sampled_from(["replace", "insert", "delete"]))
            if action == "replace":
                parent[last] = draw(yaml_trees())
            elif action == "delete":
                del parent[last]
            elif isinstance(parent, dict):
                parent[draw(_keys())] = draw(yaml_trees())
            else:
                parent.insert(draw(st.integers(0, len(parent))), draw(yaml_trees()))
        return data

    return draw_edited()


EXPRESSION_ALPHABET = tuple("()[],=.\"'\\ 0123456789-+eExu_/:~@ \t") + (
    "split", "fixed", "programmed", "search", "darts", "dash", "gaea", "text", "recall", "mad", "classify", "tag",
    "match", "pathfinder", "pixels", "bytetext", "retrieval", "resolution=", "difficulty=", "length=", "limit=",
    "lr=", "block=", "vocab=", "tau=", "tau_end=", "warmup=", "alternate=", "true", "..", "hf:", "causal-lm", "attn",
    "ssm", "mix", "linear", "nan", "inf", "1e999")


def expressions() -> st.SearchStrategy[str]:
    """Strings for expression and path fields: arbitrary text, or the expression language's pieces put together."""
    return st.one_of(st.text(max_size=60), st.lists(st.sampled_from(EXPRESSION_ALPHABET), max_size=40).map("".join))


ODD_CHARACTERS = tuple(":-[]{},&*!|>'\"%@`#?~\\\t\n\r ") + (
    "\x00", "\x07", "\x1b", "\u00e9", "\u200b", "\u202e", "\ufeff", "\U0001f600", "\u0301", "\ud7ff", "\uffff", "\u2028")
ODD_VALUES = (
    "null", "true", "~", "[]", "{}", "[1, 2]", "{a: 1}", "''", "0", "-1", "4.0", "1e-400", "1e999", ".nan", "-.inf",
    "0x" + "f" * 40, "0o" + "7" * 60, "9" * 400, "1_000", "0..1", "1:4", "yes", "!!str 3", "&a 1", "*a", "|\n  text",
    "'" + "x" * 5000 + "'", "x" * 20000, "\"\\u0000\"", "\"\\N\"", "-" * 300,
    "[" * 40 + "]" * 40, "{a: " * 30 + "1" + "}" * 30, "[" * 300 + "]" * 300,
)
ODD_EXPRESSIONS = (
    "split(0)", "split(99999999999999999999)", "split(2, 3)", "0..1, 1..", "5..2",
    "0..6, 6..12, 12..18, 18..24, 24..1000000", "fixed([[nan]])", "fixed([[1e999, 0]])",
    "fixed([" + "[0.5, 0.5], " * 500 + "])", "programmed(../../../etc/passwd)", "text(/etc/passwd, block=16)",
    "text(/dev/zero, block=16)", "text(data/corpus.txt, block=0)", "text(data/corpus.txt, block=99999999999)",
    "recall(vocab=-1)", "mad(in-context-recall, noise=2)", "mad(nope)", "darts(lr=0)",
    "darts(lr=1e999, alternate=maybe)", "gaea(tau=-1)", "hf:../../x", "hf:/etc", "hf:" + "a/" * 300, "classify(1)",
    "tag(99999999999999999999)", "f(" * 200 + ")" * 200, "\"" * 9, "(((", "a=b=c",
)


def edited_texts(texts: Mapping[str, str], edits: tuple[int, int] = (1, 4)) -> st.SearchStrategy[tuple[str, str]]:
    """(name, text): one of ``texts`` ({file name: spec text}) with text-level edits: a character flipped to YAML
    punctuation, a control or other odd Unicode character, a span deleted, a line repeated, a value swapped for
    one of another type, a huge number, a deep nesting, a long string or an odd expression."""
    names = sorted(texts)

    @st.composite
    def draw_edited(draw) -> tuple[str, str]:
        name = draw(st.sampled_from(names))
        text = texts[name]
        for _ in range(draw(st.integers(*edits))):
            if not text:
                break
            kind = draw(st.sampled_from(["flip", "delete", "repeat-line", "value", "expression", "insert"]))
            at = draw(st.integers(0, len(text) - 1))
            if kind == "flip":
                text = text[:at] + draw(st.sampled_from(ODD_CHARACTERS)) + text[at + 1:]
            elif kind == "insert":
                text = text[:at] + draw(st.sampled_from(ODD_CHARACTERS + ODD_VALUES)) + text[at:]
            elif kind == "delete":
                text = text[:at] + text[at + draw(st.integers(1, 40)):]
            else:
                lines = text.split("\n")
                i = draw(st.integers(0, len(lines) - 1))
                line = lines[i]
                if kind == "repeat-line":
                    lines.insert(i, line)
                elif ":" in line:  # replace what follows a key (or a flow mapping's key) with another value
                    cut = line.index(":") + 1
                    new = draw(st.sampled_from(ODD_VALUES if kind == "value" else ODD_EXPRESSIONS))
                    if kind == "expression":
                        new = draw(st.sampled_from([new, f'"{new}"', f"'{new}'"]))
                    lines[i] = line[:cut] + " " + new
                text = "\n".join(lines)
        return name, text

    return draw_edited()

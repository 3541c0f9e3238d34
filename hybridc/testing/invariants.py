"""hybridc's promises, one function each, usable in any test (pytest, hypothesis, unittest, a script).

Each function checks one promise and raises ``InvariantFailed`` (an ``AssertionError`` naming the promise)
when it does not hold; it returns what it measured (a maximum difference, the counts) when it does. Specs
may be given as data, YAML text or a file (``Path``) with the ``base_dir`` their relative paths resolve
against (``hybridc.testing.specs.resolve``). References are independent of hybridc's code wherever there is
one: a component's own logits are its family's transformers model (loaded from its directory as transformers
loads it, or built from its config with the seed the hybrid gives it), parameter counts are read off the
model built on PyTorch's meta device, a saved model is loaded in another process.

| function | the promise |
|---|---|
| ``parameters_match_graph`` | a lowered hybrid has exactly the parameters its graph counts, per group |
| ``one_hot_is_component`` | one-hot on a component (its embedding and head) gives its own logits, padded and not |
| ``discretized_is_one_hot`` | discretizing a one-hot hybrid gives the same logits |
| ``save_load_same_logits`` | save, load in a fresh process, the same logits |
| ``cached_decoding_is_recomputation`` | prefill then one token at a time with the cache gives the full forward's logits |
| ``fmt_is_idempotent`` | ``fmt`` is a fixed point and ``diff(spec, fmt(spec))`` is empty |
| ``variation_shows_in_diff`` | ``diff`` names exactly the change a variation made |
| ``cost_model_matches_meta`` | a family's parameter counts are those of its model on the meta device |
| ``error_is_located`` | an invalid spec gives its error on the right line, every error located in the file |
| ``front_end_is_total`` | any text gives a valid spec (that ``fmt`` reads back as itself) or located errors |
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import SpecError
from ..spec.frontend import ResolvedSpec
from .specs import FILE, SpecLike, canonical_data, one_hot, parse, resolve, text

if TYPE_CHECKING:
    import torch

    from ..components.family import Family
    from ..models.hybrid import HybridModel
    from .strategies import BadSpec, Variation

TOLERANCE = 1e-4  # float32 logits of tiny models: the same computation in another order stays far below this
IDENTITY_PROJECTORS = ("linear", "linear-skip", "none")  # projector kinds that start as fit(x)


class InvariantFailed(AssertionError):
    """A promise that does not hold: ``invariant`` names it, ``detail`` says how it failed."""

    def __init__(self, invariant: str, detail: str):
        self.invariant, self.detail = invariant, detail
        super().__init__(f"{invariant}: {detail}")


def _fail(invariant: str, detail: str) -> None:
    raise InvariantFailed(invariant, detail)


# ---- models --------------------------------------------------------------------------------------------------


def parameters_match_graph(model: "HybridModel") -> dict[str, int]:
    """A lowered hybrid (continuous or discretized) holds exactly the parameters its block graph counts, in
    every group (components, projectors, embeddings, head, alphas); a weight shared by a tied head and its
    embedding counted once. Returns the counts per group."""
    expected = model.graph.params_by_group()
    total = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
    if total != sum(expected.values()):
        _fail("parameters equal the graph's count", f"the model holds {total}, the graph counts {sum(expected.values())}")
    counted = {group: sum(p.numel() for _, p in params) for group, params in model.param_groups().items()}
    if counted != expected:
        wrong = {g: f"{counted.get(g)} (graph {expected.get(g)})" for g in expected if counted.get(g) != expected[g]}
        _fail("parameters equal the graph's count", f"per group, model vs graph: {wrong}")
    return counted


def inputs(vocab: int, length: int = 12, batch: int = 2, seed: int = 0, pad: int = 4):
    """Token ids (B, T) in [3, vocab) (no special ids among them), the same ids left-padded (row 1 starts ``pad``
    tokens late, after padding id 0) and that padding mask (B, T)."""
    import torch

    ids = torch.randint(min(3, vocab - 1), vocab, (batch, length), generator=torch.Generator().manual_seed(seed))
    mask = torch.ones_like(ids)
    if batch > 1 and length > pad:
        mask[1, :pad] = 0
    return ids, ids.masked_fill(mask == 0, 0), mask


def _max_diff(a: "torch.Tensor", b: "torch.Tensor") -> float:
    if a.shape != b.shape:
        return float("inf")
    return (a.double() - b.double()).abs().max().item() if a.numel() else 0.0


def _length(rs: ResolvedSpec, wanted: int = 12) -> int:
    limits = [c.shape.max_length for c in rs.components if c.shape.max_length]
    return max(2, min([wanted, *limits]))


def reference_model(rs: ResolvedSpec, component: str):
    """Component ``component`` of a resolved spec as its family's own model, in eval mode, float32: a ``from:``
    directory (or Hub id) loaded as transformers loads it (``AutoModelForCausalLM``, the component's
    ``trust_remote_code``; a plugin's class when transformers' Auto classes do not know it), a from-scratch
    component built from its config by its family's class with the seed the hybrid gives it."""
    import torch

    from ..components.adapters import build_model
    from ..components.pretrained import load_pretrained
    from ..components.quiet import silenced
    from ..components.registry import get_family
    from ..models.component_models import derived_seed

    rc = rs.component(component)
    family = get_family(rc.family)
    if rc.location is None:
        return build_model(family, rc.config, seed=derived_seed(rs.spec.train.seed, "component", component)).eval()
    trust = rs.spec.component(component).trust_remote_code
    from transformers import AutoModelForCausalLM

    with silenced():
        try:
            model = AutoModelForCausalLM.from_pretrained(rc.location, revision=rc.revision, dtype=torch.float32,
                                                         trust_remote_code=trust)
        except ValueError:  # a family transformers' Auto classes do not know (a plugin that did not register it)
            model = load_pretrained(family, rc.location, revision=rc.revision, trust_remote_code=trust)
    return model.eval()


def one_hot_is_component(spec: SpecLike, component: str | None = None, base_dir: str | Path | None = None, *,
                         tol: float = TOLERANCE, reference=None) -> float:
    """One-hot on ``component`` (alpha 1 in every block, its embedding and head; ``specs.one_hot``) the hybrid's
    logits are the component's own (``reference_model``, or ``reference`` given), unpadded and left-padded (at
    the real positions), up to ``tol``. ``component`` defaults to the first one with ``vocab: pretrained``; a
    component with ``vocab: new`` or ``transplant`` is not itself under the hybrid's vocabulary (ValueError).
    The spec's own mixture, embeddings and head do not matter. Returns the largest difference."""
    import torch

    from ..models.hybrid import lower

    base = resolve(spec, base_dir)
    names = [n for n in base.names if base.component(n).vocab == "pretrained"]
    component = component or (names[0] if names else base.names[0])
    if base.component(component).vocab != "pretrained":
        raise ValueError(f"component {component!r} has vocab: {base.component(component).vocab}: one-hot on it is "
                         "its layers under the hybrid's vocabulary, not the component itself")
    rs = resolve(one_hot(canonical_data(base), component), base.base_dir)
    hybrid = lower(rs).eval()
    own = reference if reference is not None else reference_model(rs, component)
    ids, padded, mask = inputs(rs.vocab_size, _length(rs))
    real = mask.bool()
    with torch.no_grad():
        ours, theirs = hybrid(ids).logits, _own_logits(own, ids)[..., : rs.vocab_size]
        worst = _max_diff(ours, theirs)
        if not worst <= tol:
            _fail("one-hot equals the component's own logits",
                  f"one-hot on {component!r} ({rs.component(component).family}): max |difference| {worst:.3g} > {tol:g}")
        ours = hybrid(padded, attention_mask=mask).logits[real]
        theirs = _own_logits(own, padded, mask)[..., : rs.vocab_size][real]
        padded_worst = _max_diff(ours, theirs)
        if not padded_worst <= tol:
            _fail("one-hot equals the component's own logits (left-padded)",
                  f"one-hot on {component!r} ({rs.component(component).family}), left-padded: max |difference| "
                  f"{padded_worst:.3g} > {tol:g}")
    return max(worst, padded_worst)


def _own_logits(model, ids: "torch.Tensor", mask: "torch.Tensor | None" = None) -> "torch.Tensor":
    """The component's own full-sequence forward (no generation cache: some families' cache cannot be made for
    every config, Zamba2's of Mamba layers only); a family whose model takes no ``use_cache`` is called without."""
    try:
        return model(ids, attention_mask=mask, use_cache=False).logits
    except TypeError:
        return model(ids, attention_mask=mask).logits


def discretized_is_one_hot(spec: SpecLike, selection: Sequence[str] | None = None,
                           base_dir: str | Path | None = None, *, tol: float = TOLERANCE) -> float:
    """A hybrid whose alphas are one-hot (block i on ``selection[i]``; default: the spec's own fixed one-hot
    rows) and its discretization (``lower(rs, selection=...)``: unselected parts pruned) give the same logits,
    and the pruned model holds the parameters its graph counts. Where the component changes between blocks
    the discretized hybrid runs projectors, so their kinds must start as the identity (linear, linear-skip,
    none); otherwise a ValueError. Returns the largest difference."""
    import torch

    from ..models.hybrid import lower
    from .specs import fixed, rows_of

    base = resolve(spec, base_dir)
    data = canonical_data(base)
    names = list(base.names)
    if selection is None:
        rows = rows_of(data["hybrid"]["mixture"])
        if rows is None or any(sorted(row) != [0.0] * (len(row) - 1) + [1.0] for row in rows):
            raise ValueError("discretized_is_one_hot needs one-hot fixed alphas, or a selection")
        selection = [names[row.index(1.0)] for row in rows]
    selection = list(selection)
    if len(selection) != base.num_blocks or set(selection) - set(names):
        raise ValueError(f"a selection names one of {names} for each of the {base.num_blocks} blocks, not {selection}")
    data["hybrid"]["mixture"] = fixed([[1.0 if n == s else 0.0 for n in names] for s in selection])
    data["hybrid"].pop("budget", None)
    rs = resolve(data, base.base_dir)
    changes = _projected(rs, selection)
    kinds = dict(rs.spec.hybrid.projectors)
    if any(kinds[m] not in IDENTITY_PROJECTORS for m in changes):
        raise ValueError(f"the discretized hybrid projects into {sorted(changes)} where the component changes, and "
                         f"their projectors ({', '.join(sorted(kinds[m] for m in changes))}) do not start as the identity")
    continuous = lower(rs).eval()
    pruned = lower(rs, selection=selection).eval()
    parameters_match_graph(pruned)
    ids, padded, mask = inputs(rs.vocab_size, _length(rs))
    with torch.no_grad():
        if rs.spec.task.kind == "classify":
            a, b = continuous(ids).logits, pruned(ids).logits
        else:
            a, b = continuous(padded, attention_mask=mask).logits[mask.bool()], pruned(padded, attention_mask=mask).logits[mask.bool()]
        worst = _max_diff(a, b)
    if not worst <= tol:
        _fail("discretizing a one-hot hybrid keeps its logits",
              f"selection {' | '.join(selection)}: max |difference| {worst:.3g} > {tol:g}")
    return worst


def _projected(rs: ResolvedSpec, selection: Sequence[str]) -> set[str]:
    """The components a discretized hybrid projects into or out of (where the component changes)."""
    first = rs.spec.hybrid.embeddings if rs.spec.hybrid.embeddings != "mix" else selection[0]
    last = rs.spec.hybrid.head if rs.spec.hybrid.head != "mix" else selection[0]
    changes = set()
    previous = first
    for chosen in selection:
        if chosen != previous:
            changes |= {chosen, previous}
        previous = chosen
    if rs.spec.task.kind == "causal-lm" and last != selection[-1]:
        changes |= {last, selection[-1]}
    return changes


class Loader:
    """A fresh Python process that loads saved hybrids and computes their logits (``python -m
    hybridc.testing.loader``): it never built the models it loads, and shares nothing with this process but
    the files. Use one for many loads (``with Loader() as loader: ...``); the process starts at the first load.
    Its environment is this process's, with this process's ``sys.path`` (so plugin families installed for the
    test are found)."""

    def __init__(self) -> None:
        self._process: subprocess.Popen | None = None

    @property
    def process(self) -> subprocess.Popen:
        if self._process is None:
            env = dict(os.environ)
            paths = [p for p in sys.path if p and Path(p).is_dir()]
            env["PYTHONPATH"] = os.pathsep.join(paths + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
            self._process = subprocess.Popen([sys.executable, "-m", "hybridc.testing.loader"], stdin=subprocess.PIPE,
                                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        return self._process

    def logits(self, directory: str | Path, tensors: Mapping[str, "torch.Tensor"]) -> dict[str, "torch.Tensor"]:
        """{name: logits} of the hybrid saved in ``directory`` on each input ({name: (ids, mask or None)})."""
        from safetensors.torch import load_file, save_file

        with tempfile.TemporaryDirectory(prefix="hybridc-loader-") as tmp:
            request = Path(tmp) / "inputs.safetensors"
            flat = {}
            for name, (ids, mask) in tensors.items():
                flat[f"{name}.ids"] = ids.contiguous()
                if mask is not None:
                    flat[f"{name}.mask"] = mask.contiguous()
            save_file(flat, str(request))
            answer = Path(tmp) / "logits.safetensors"
            self.process.stdin.write(json.dumps({"model": str(directory), "inputs": str(request),
                                                 "out": str(answer)}) + "\n")
            self.process.stdin.flush()
            reply = self.process.stdout.readline()
            if not reply:
                raise RuntimeError(f"the loader process ended: {self.process.stderr.read()[-3000:]}")
            status = json.loads(reply)
            if status.get("error"):
                raise InvariantFailed("a saved hybrid loads in a fresh process", status["error"])
            return {k: v.clone() for k, v in load_file(str(answer)).items()}

    def close(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.stdin.close()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def __enter__(self) -> "Loader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def save_load_same_logits(model: "HybridModel", directory: str | Path | None = None, *, fresh_process: bool = True,
                          loader: Loader | None = None, tol: float = 1e-6) -> float:
    """``model.save_pretrained(directory)`` (a temporary one by default), then loaded in a fresh process
    (``loader``, or a process started for this call; ``fresh_process=False``: in this one), gives the same
    logits, unpadded and left-padded, up to ``tol``. Returns the largest difference."""
    import torch

    from ..models.hybrid import HybridModel

    model = model.eval()
    rs = model.resolved_spec
    ids, padded, mask = inputs(rs.vocab_size, _length(rs))
    with torch.no_grad():
        expected = {"plain": model(ids).logits, "padded": model(padded, attention_mask=mask).logits}
    with tempfile.TemporaryDirectory(prefix="hybridc-saved-") as tmp:
        target = Path(directory) if directory is not None else Path(tmp) / "model"
        from ..components.quiet import silenced

        with silenced():
            model.save_pretrained(target)
        if not fresh_process:
            with silenced():
                again = HybridModel.from_pretrained(target).eval()
            with torch.no_grad():
                got = {"plain": again(ids).logits, "padded": again(padded, attention_mask=mask).logits}
        else:
            requests = {"plain": (ids, None), "padded": (padded, mask)}
            if loader is not None:
                got = loader.logits(target, requests)
            else:
                with Loader() as once:
                    got = once.logits(target, requests)
    worst = max(_max_diff(expected[k], got[k]) for k in expected)
    if not worst <= tol:
        _fail("save -> fresh-process load -> same logits", f"max |difference| {worst:.3g} > {tol:g}")
    return worst


def cached_decoding_is_recomputation(model: "HybridModel", *, prefill: int | None = None,
                                     tol: float = TOLERANCE) -> float:
    """A causal-LM hybrid run with its generation cache, a prefill then one token at a time, gives the logits
    of the full forward without a cache, unpadded and left-padded. Returns the largest difference."""
    import torch

    model = model.eval()
    rs = model.resolved_spec
    if rs.spec.task.kind != "causal-lm":
        raise ValueError(f"a {rs.spec.task} hybrid does not decode")
    ids, padded, mask = inputs(rs.vocab_size, _length(rs))
    length = ids.shape[1]
    first = prefill if prefill is not None else length // 2 + 1
    worst = 0.0
    with torch.no_grad():
        for name, x, m in (("unpadded", ids, None), ("left-padded", padded, mask)):
            full = model(x, attention_mask=m).logits
            cache = model.new_cache()
            steps = [model(x[:, :first], attention_mask=None if m is None else m[:, :first], past_key_values=cache,
                           use_cache=True).logits]
            for t in range(first, length):
                steps.append(model(x[:, t:t + 1], attention_mask=None if m is None else m[:, :t + 1],
                                   past_key_values=cache, use_cache=True).logits)
            cached = torch.cat(steps, dim=1)
            real = torch.ones_like(x, dtype=torch.bool) if m is None else m.bool()
            diff = _max_diff(cached[real], full[real])
            if not diff <= tol:
                _fail("cached decoding equals recomputation",
                      f"{name}, prefill {first} of {length} tokens: max |difference| {diff:.3g} > {tol:g}")
            worst = max(worst, diff)
    return worst


# ---- the front end -----------------------------------------------------------------------------------------


def fmt_is_idempotent(spec: SpecLike, base_dir: str | Path | None = None) -> str:
    """``fmt`` of a valid spec reads back as the same spec, ``fmt`` of that is itself, and ``diff(spec,
    fmt(spec))`` names no change (either way). Returns the canonical text."""
    from ..graph.diff import diff_specs, try_resolve

    if isinstance(spec, (ResolvedSpec,)):
        spec = spec.text
    source = text(spec) if isinstance(spec, dict) else spec
    if isinstance(source, Path) and base_dir is None:
        base_dir = source.parent
    first = parse(source, base_dir)
    canonical = first.canonical_text()
    second = parse(canonical, base_dir)
    if second.canonical_text() != canonical:
        _fail("fmt is idempotent", "fmt of the canonical text changes it")
    if second.spec != first.spec:
        _fail("fmt is idempotent", "the canonical text reads back as another spec")
    ra, rb = try_resolve(first), try_resolve(second)
    for a, b, ra_, rb_ in ((first, second, ra, rb), (second, first, rb, ra)):
        changes = diff_specs(a.spec, b.spec, ra_, rb_)
        if changes:
            _fail("diff(spec, fmt(spec)) is empty", "; ".join(c.render() for c in changes))
    return canonical


def variation_shows_in_diff(spec: SpecLike, variation: "Variation", base_dir: str | Path | None = None) -> list[str]:
    """``hybridc diff`` of a spec and a variation of it names exactly the changes the variation made: each key the
    variation changed, or keys inside it (``hybrid.budget`` shows as ``hybrid.budget.params``), and nothing
    else; the reverse diff is its inverse. Returns the changes, rendered."""
    from ..graph.diff import diff_specs, try_resolve

    if isinstance(spec, Path) and base_dir is None:
        base_dir = spec.parent
    a, b = parse(spec, base_dir), parse(variation.spec, base_dir)
    ra, rb = try_resolve(a), try_resolve(b)
    forward = diff_specs(a.spec, b.spec, ra, rb)
    paths = [c.path for c in forward]
    if not _paths_cover(paths, variation.changes):
        shown = "; ".join(c.render() for c in forward) or "no change"
        _fail("a variation shows in diff", f"{variation.what}: expected {sorted(variation.changes)}, diff says: {shown}")
    backward = diff_specs(b.spec, a.spec, rb, ra)
    if sorted(c.inverse().render() for c in forward) != sorted(c.render() for c in backward):
        _fail("a variation shows in diff", f"{variation.what}: the reverse diff is not the inverse")
    return [c.render() for c in forward]


def _inside(path: str, key: str) -> bool:
    return path == key or path.startswith((key + ".", key + "["))


def _paths_cover(paths: list[str], keys: Sequence[str]) -> bool:
    """Every key has a diff entry at it or inside it, and every entry lies inside one of the keys."""
    return (all(any(_inside(p, k) for p in paths) for k in keys)
            and all(any(_inside(p, k) for k in keys) for p in paths))


def cost_model_matches_meta(family: "str | Family", config: Mapping[str, Any]) -> dict[str, Any]:
    """A family's parameter counts (``Family.param_counts``: what graphs, ``compile`` and budgets use) are those
    of its transformers model built from ``config`` on the meta device, split as its adapter cuts the model:
    embedding, each layer (parameters several layers share apart), head, the rest (position embeddings and
    final norm), and the total. Returns the meta counts."""
    from ..components.adapters import build_on_meta, load_adapter
    from .tiny import family_of

    fam = family_of(family)
    model = build_on_meta(fam, dict(config))
    adapter = load_adapter(fam, model)
    seen: set[int] = set()

    def own(module) -> int:
        fresh = {id(p): p for p in module.parameters() if id(p) not in seen}
        seen.update(fresh)
        return sum(p.numel() for p in fresh.values())

    embedding = own(adapter.embedding())
    users: dict[int, list[int]] = {}
    sizes: dict[int, int] = {}
    for index, layer in enumerate(adapter.layers()):
        for p in layer.parameters():
            if id(p) not in seen:
                users.setdefault(id(p), []).append(index)
                sizes[id(p)] = p.numel()
    shared = sum(sizes[k] for k, used in users.items() if len(set(used)) > 1)
    seen.update(k for k, used in users.items() if len(set(used)) > 1)
    layers = tuple(own(layer) for layer in adapter.layers())
    head = own(adapter.lm_head())
    total = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
    meta = {"embedding": embedding, "layers": layers, "shared": shared, "head": head,
            "rest": total - embedding - sum(layers) - shared - head, "total": total}
    counts = fam.param_counts(config)
    claimed = {"embedding": counts.embedding, "layers": tuple(counts.layers),
               "shared": sum(count for count, _ in counts.shared), "head": counts.head,
               "rest": counts.position + counts.final_norm, "total": counts.total}
    wrong = {k: f"{claimed[k]} (meta device {meta[k]})" for k in meta if claimed[k] != meta[k]}
    if wrong:
        _fail("the cost model's counts equal a meta-device count", f"{fam.name}: {wrong}")
    return meta


def _line_of(root, path: tuple) -> int:
    """The line where the node at ``path`` (or its nearest written ancestor) is written; 1 for the top."""
    from ..spec.tree import Mapping as MappingNode
    from ..spec.tree import find

    for n in range(len(path), 0, -1):
        parent = find(root, path[: n - 1])
        last = path[n - 1]
        if isinstance(parent, MappingNode) and isinstance(last, str) and parent.key_node(last) is not None:
            return parent.key_node(last).loc.line
        node = find(root, path[:n])
        if node is not None:
            return node.loc.line
    return 1


def error_is_located(bad: "BadSpec", base_dir: str | Path | None = None) -> list[str]:
    """An invalid spec (``strategies.bad_specs``) is refused by ``validate`` with an error on the line where
    ``bad.at`` is written whose message contains ``bad.message``, and every error it gives is located in the
    file (a line of it, column >= 1) and printed on one line. Returns the errors, rendered."""
    from ..spec.load import parse_text

    source = text(bad.spec)
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    try:
        resolve(source, base)
    except SpecError as err:
        diagnostics = err.diagnostics
    else:
        _fail("an invalid spec gives a located error", f"{bad.what}: the spec validates")
    lines = source.count("\n") + 1
    for d in diagnostics:
        rendered = d.render()
        if d.location.file != FILE or not 1 <= d.location.line <= lines or d.location.col < 1 or "\n" in rendered:
            _fail("an invalid spec gives a located error", f"{bad.what}: not located in the file: {rendered}")
    line = _line_of(parse_text(source, file=FILE, path=base / FILE).root, bad.at)
    if not any(d.location.line == line and bad.message in d.message for d in diagnostics):
        _fail("an invalid spec gives a located error",
              f"{bad.what}: no error on line {line} says {bad.message!r}; got: "
              + "; ".join(d.render() for d in diagnostics))
    return [d.render() for d in diagnostics]


def front_end_is_total(source: str | bytes, file: str = "fuzz.yaml", base_dir: str | Path | None = None):
    """Whatever ``source`` holds, the front end gives a valid spec or a ``SpecError`` whose every diagnostic is
    located inside the file, never another exception; a spec it accepts prints (``fmt``) as text that reads
    back as the same spec. Returns the parsed spec, or None for a located refusal."""
    from ..spec.frontend import check_document, parse_document, parse_string
    from ..spec.load import parse_text

    base = Path(base_dir) if base_dir is not None else Path(tempfile.gettempdir())
    try:
        doc = parse_text(source, file=file, path=base / file)
        check_document(doc)  # the semantic checks of a partial spec too, past text-level problems
        parsed = parse_document(doc)
    except SpecError as err:
        # YAML breaks lines at \n, \r\n and a lone \r (as editors do); str.splitlines breaks at those and more
        lines = len((source if isinstance(source, str) else source.decode("utf-8", "replace")).splitlines())
        for d in err.diagnostics:
            loc = d.location
            if (loc.file != file or loc.line < 1 or loc.col < 1 or loc.line > lines + 1 or not d.message
                    or "Traceback" in d.render()):
                _fail("the front end locates every error", d.render())
        return None
    again = parse_string(parsed.canonical_text(), file="canonical.yaml", base_dir=base)
    if again.spec != parsed.spec:
        _fail("fmt of an accepted spec reads back as itself", parsed.canonical_text()[:2000])
    return parsed

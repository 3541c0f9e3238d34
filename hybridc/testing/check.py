"""``hybridc check SPEC``: hybridc's invariants on variations of a user's spec, with tiny stand-ins of its components.

The spec is validated as it is (located errors, exit 2), its components' parameter counts are checked against
their models on the meta device (their real configs: no memory, no weights), and ``fmt`` must be a fixed point of
it. Then each component is replaced by a tiny stand-in (``hybridc.testing.tiny``: the same family, layers,
vocabulary and settings, tiny widths and random weights; a ``from:`` directory's tokenizer files and its own code
come along), and hypothesis draws variations of the spec (``strategies.variations``: one meaningful change each).
On the spec and on each variation:

- ``diff`` names exactly the change made, and ``fmt`` is a fixed point;
- the lowered hybrid holds the parameters its graph counts;
- one-hot on a component (drawn) gives that component's own logits, padded and not; discretizing it keeps them;
- cached decoding equals recomputation (causal-lm);
- saved, the hybrid loads in a fresh process with the same logits.

The first failure is shrunk by hypothesis to the smallest variation that still fails, and printed as a spec.
Nothing is written outside a temporary directory (no hypothesis database either); the variations are drawn from
``seed``, so a run is reproducible.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import RunError
from ..spec.frontend import ResolvedSpec, load_spec
from . import invariants as inv
from .specs import canonical_data, one_hot, resolve, text
from .tiny import TINY_COMMON, _is_setting, family_of, one_thread, stand_in, tiny_overrides


@dataclass
class Outcome:
    """What ``check_spec`` found: the examples run, and the failure (None when every invariant held)."""

    examples: int = 0
    failure: inv.InvariantFailed | None = None
    counterexample: str | None = None  # the smallest failing spec (with its stand-ins), as YAML
    what: str = ""  # the variation that fails, in words ("" for the spec itself)
    stand_ins: list[str] = field(default_factory=list)
    warnings: tuple = ()  # the spec's own warnings (validate's)
    seconds: float = 0.0


def _stand_in_init(init: dict[str, Any], rc) -> dict[str, Any]:
    """A from-scratch component's ``init`` with tiny widths: its family, layers, vocabulary, positions and every
    setting that is not a size kept."""
    family = family_of(init["family"])
    sizes = tiny_overrides(family)
    out: dict[str, Any] = {"family": init["family"], "hidden_size": sizes.pop("hidden_size", TINY_COMMON["hidden_size"]),
                           "layers": rc.num_layers}
    if family.keys.heads and family.has_attention:
        out["heads"] = sizes.pop("heads", TINY_COMMON["heads"])
    for key in ("vocab_size", "max_length"):
        if key in init:
            out[key] = init[key]
    out.update({k: v for k, v in init.items() if k not in out and k not in ("hidden_size", "heads")
                and _is_setting(k, v, rc.num_layers)})
    out.update({k: v for k, v in sizes.items() if k not in ("layers", "vocab_size", "max_length")})
    return out


def _source_directory(rc) -> Path | None:
    """A component's local directory; for a Hub component, its cached snapshot (tokenizer files, code)."""
    if rc.location is None:
        return None
    path = Path(rc.location)
    if path.is_dir():
        return path
    try:
        from ..components import hub

        return hub.download(rc.location, "config.json", rc.revision).parent
    except Exception:  # noqa: BLE001 - no files to copy beside the stand-in
        return None


def stand_in_spec(rs: ResolvedSpec, directory: Path, *, seed: int = 0) -> tuple[dict, list[str]]:
    """The spec's canonical data with every component replaced by a tiny stand-in (``from:`` directories saved
    under ``directory``), and a line describing each stand-in."""
    data = canonical_data(rs)
    said = []
    for name in rs.names:
        rc = rs.component(name)
        entry = data["components"][name]
        if "init" in entry:
            entry["init"] = _stand_in_init(entry["init"], rc)
            said.append(f"{name}: {rc.family}, {rc.num_layers} layers, width {entry['init']['hidden_size']} "
                        f"(from scratch, was {rc.hidden_size})")
        else:
            target = directory / name
            stand_in(rc.family, _source_directory(rc), dict(rc.config), target, seed=seed)
            entry["from"] = str(target)
            said.append(f"{name}: {rc.family}, {rc.num_layers} layers, tiny width, random weights "
                        f"(stands in for {rs.spec.component(name).source})")
    return data, said


def check_invariants(data: dict, base: dict | None, base_dir: Path, component: str, *, loader: inv.Loader | None,
                     what: str = "", changes: tuple[str, ...] = (), perturb: int = 0) -> None:
    """Every invariant ``hybridc check`` runs, on one spec (``data``; ``base`` and ``changes``: the spec it varies
    and the changes ``diff`` must name), one-hot on ``component``."""
    import torch

    from ..models.hybrid import lower
    from .strategies import Variation

    if base is not None:
        inv.variation_shows_in_diff(base, Variation(data, changes, what), base_dir)
    inv.fmt_is_idempotent(data, base_dir)
    rs = resolve(data, base_dir)
    model = lower(rs).eval()
    inv.parameters_match_graph(model)
    if rs.component(component).vocab == "pretrained":
        inv.one_hot_is_component(rs, component)
        hot = one_hot(canonical_data(rs), component)
        inv.discretized_is_one_hot(hot, base_dir=base_dir)
    if rs.spec.task.kind == "causal-lm":
        inv.cached_decoding_is_recomputation(model)
    with torch.no_grad():  # weights as after training: projectors off the identity, alphas off uniform
        g = torch.Generator().manual_seed(perturb)
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    inv.save_load_same_logits(model, loader=loader)


def check_spec(path: str | Path, *, examples: int = 20, seed: int = 0,
               progress: Callable[[int, int], None] | None = None) -> Outcome:
    """Check the invariants on ``path``'s spec and ``examples`` variations of it (see the module doc). Raises
    ``SpecError`` for an invalid spec; returns the ``Outcome``."""
    try:
        from hypothesis import HealthCheck, given, settings
        from hypothesis import seed as hypothesis_seed
        from hypothesis import strategies as st
    except ImportError:
        raise RunError("hybridc check needs hypothesis, which is not installed", "pip install 'hybridc[testing]'") from None
    from .strategies import variations

    began = time.perf_counter()
    path = Path(path)
    rs = load_spec(path)
    base_dir = path.resolve().parent
    outcome = Outcome(warnings=rs.warnings)
    inv.fmt_is_idempotent(path)
    for name in rs.names:  # the real components' counts (meta device: no memory, no weights)
        rc = rs.component(name)
        inv.cost_model_matches_meta(rc.family, dict(rc.config))
    work = Path(tempfile.mkdtemp(prefix="hybridc-check-"))
    try:
        with one_thread(), inv.Loader() as loader:
            base, outcome.stand_ins = stand_in_spec(rs, work, seed=seed)
            names = list(base["components"])
            for name in names:
                rc = resolve(base, base_dir).component(name)
                inv.cost_model_matches_meta(rc.family, dict(rc.config))
            try:  # the spec itself, with its stand-ins: its failure needs no shrinking
                check_invariants(base, None, base_dir, names[0], loader=loader, perturb=seed)
            except inv.InvariantFailed as err:
                outcome.failure, outcome.counterexample = err, text(base)
                return outcome
            failures: list[tuple[Any, str, inv.InvariantFailed]] = []

            @hypothesis_seed(seed)
            @settings(max_examples=examples, deadline=None, database=None, print_blob=False,
                      suppress_health_check=list(HealthCheck))
            @given(variation=variations(base, base_dir), pick=st.integers(0, len(names) - 1))
            def run(variation, pick: int) -> None:
                component = list(variation.spec["components"])[pick]
                try:
                    check_invariants(variation.spec, base, base_dir, component, loader=loader,
                                     what=variation.what, changes=variation.changes, perturb=seed)
                except inv.InvariantFailed as err:
                    failures.append((variation, component, err))
                    raise
                finally:
                    outcome.examples += 1
                    if progress is not None:
                        progress(min(outcome.examples, examples), examples)

            try:
                run()
            except inv.InvariantFailed:
                variation, component, err = failures[-1]  # hypothesis replays the smallest failing one last
                outcome.failure, outcome.counterexample = err, text(variation.spec)
                outcome.what = f"{variation.what} (one-hot checks on {component})"
    finally:
        shutil.rmtree(work, ignore_errors=True)
        outcome.seconds = time.perf_counter() - began
    return outcome

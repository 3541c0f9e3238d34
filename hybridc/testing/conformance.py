"""The conformance kit for model families: the checks every built-in family passes, run on yours.

A family (built-in, or a plugin registered through the ``hybridc.families`` entry point) conforms when, for
tiny models of it drawn by hypothesis (layers, width, heads, block cuts, projector kinds, a partner component
beside it, names and order), each check below holds. The reference is always the family's own transformers
model, loaded from a ``save_pretrained`` directory as transformers loads it:

| check | the promise (``hybridc.testing.invariants``) |
|---|---|
| ``counts`` | the family's parameter counts are its model's on the meta device, part by part |
| ``parameters`` | a hybrid of it (continuous and discretized) holds exactly the parameters its graph counts |
| ``one-hot`` | one-hot on it, the hybrid's logits are its own, unpadded and left-padded |
| ``zero-branch`` | one-hot on the partner (its branch at weight 0, never run), the partner's own logits |
| ``generate`` | cached greedy ``generate`` of the one-hot hybrid is its own ``generate`` |
| ``cache`` | cached decoding (prefill, then token by token) of a mixed hybrid equals recomputation |
| ``discretize`` | discretizing the one-hot hybrid keeps its logits |
| ``save-load`` | saved, moved and loaded in a fresh process, the same logits |

Three ways to run it:

- ``check_family("my-family", examples=10)``: raises ``FamilyNonconformance`` (an ``AssertionError``) naming the
  first check that fails, with the smallest failing case hypothesis shrank to (fewest layers, narrowest width);
- a pytest class: ``class TestMyFamily(FamilyConformance): family = "my-family"`` (one test per check);
- a pytest plugin: ``pytest -p hybridc.testing.conformance --hybridc-family my-family`` adds one test per check
  and family, with no test file of your own.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, find, given, reject, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from . import invariants as inv
from .specs import canonical_data, fixed, resolve
from .strategies import PROJECTORS, _init_family, partitions
from .tiny import family_of, one_thread, tiny_checkpoint, tiny_config

CHECKS = ("counts", "parameters", "one-hot", "zero-branch", "generate", "cache", "discretize", "save-load")
VOCAB = 96
NEW_TOKENS = 5
# component names: short and long, like a family's own module names or not, sorting before and after each other
NAMES = ("a", "b", "zz", "model", "layers", "attn_0", "ssm")


class FamilyNonconformance(AssertionError):
    """A family fails a check: ``check`` and ``invariant`` name it, ``case`` is the smallest failing case."""

    def __init__(self, family: str, check: str, invariant: str, detail: str, case: "Case"):
        self.family, self.check, self.invariant, self.detail, self.case = family, check, invariant, detail, case
        super().__init__(f"family {family!r} fails the conformance check {check!r}: {invariant}: {detail}\n"
                         f"smallest failing case: {case.describe()}")


@dataclass(frozen=True)
class Case:
    """One drawn case: the family's tiny config and how it sits in a two-component hybrid."""

    family: str
    sizes: dict[str, Any]  # tiny_config overrides: layers, hidden_size, heads
    blocks: int
    cut: str  # the family's block cuts
    partner: str
    partner_layers: int
    projector: str
    name: str  # the family's component name
    partner_name: str
    family_first: bool
    config: dict[str, Any] = field(default_factory=dict, compare=False)

    def describe(self) -> str:
        order = (f"{self.name} ({self.family}), {self.partner_name} ({self.partner})" if self.family_first else
                 f"{self.partner_name} ({self.partner}), {self.name} ({self.family})")
        sizes = ", ".join(f"{k}: {v}" for k, v in self.sizes.items())
        return (f"{self.family} with {sizes}; {self.blocks} block{'s' * (self.blocks != 1)}, its cuts {self.cut}; "
                f"projector {self.projector}; components {order}")

    def spec(self, directory: Path, partner_dir: Path | None = None) -> dict:
        """A two-block-or-more hybrid of the family (``from: directory``) and the partner (from scratch, or
        ``from: partner_dir``), searched; the checks make their one-hot and fixed variants of it."""
        own = {"from": str(directory), "blocks": self.cut}
        partner_init = {"family": self.partner, **{k: v for k, v in _partner_sizes(self).items()}}
        other = ({"from": str(partner_dir)} if partner_dir is not None else {"init": partner_init})
        other["blocks"] = f"split({self.blocks})"
        entries = [(self.name, own), (self.partner_name, other)]
        if not self.family_first:
            entries.reverse()
        return {"hybridc": 1, "name": "conformance", "tokenizer": self.name, "components": dict(entries),
                "hybrid": {"projector": self.projector, "mixture": "search"}}


def _partner_sizes(case: Case) -> dict[str, Any]:
    config = tiny_config(case.partner, layers=case.partner_layers, vocab_size=VOCAB)
    family = family_of(case.partner)
    sizes = {"hidden_size": config[family.keys.hidden], "layers": case.partner_layers, "vocab_size": VOCAB}
    if family.keys.heads and family.has_attention:
        sizes["heads"] = config[family.keys.heads]
    if family.keys.max_length:
        sizes["max_length"] = config[family.keys.max_length]
    return sizes


def cases(family: str, partner: str = "mamba", *, widths: Sequence[int] = (16, 32),
          heads: Sequence[int] = (2, 4), layers: tuple[int, int] = (1, 3)) -> st.SearchStrategy[Case]:
    """Cases of ``family`` beside ``partner``, shrinking toward one layer, one block, the narrowest width."""
    pool = _init_family(family_of(family).name, widths, heads, VOCAB)

    @st.composite
    def draw_case(draw) -> Case:
        n_layers = draw(st.integers(*layers))
        width, h = draw(st.sampled_from(pool.sizes))
        sizes: dict[str, Any] = {"layers": n_layers, "hidden_size": width}
        if h is not None:
            sizes["heads"] = h
        blocks = draw(st.integers(1, n_layers))
        name = draw(st.sampled_from(NAMES))
        partner_name = draw(st.sampled_from([n for n in NAMES if n != name]))
        return Case(family=pool.name, sizes=sizes, blocks=blocks, cut=draw(partitions(n_layers, blocks)),
                    partner=partner, partner_layers=max(blocks, 2), projector=draw(st.sampled_from(PROJECTORS)),
                    name=name, partner_name=partner_name, family_first=draw(st.booleans()),
                    config=tiny_config(family, vocab_size=VOCAB, **sizes))

    return draw_case()


class _Workspace:
    """Temporary directories of one check run (removed at its end) and the fresh process that loads models."""

    def __init__(self, fresh_process: bool):
        self.root = Path(tempfile.mkdtemp(prefix="hybridc-conformance-"))
        self.count = 0
        self.fresh_process = fresh_process
        self._loader: inv.Loader | None = None

    def directory(self) -> Path:
        self.count += 1
        return self.root / str(self.count)

    @property
    def loader(self) -> inv.Loader | None:
        if self.fresh_process and self._loader is None:
            self._loader = inv.Loader()
        return self._loader

    def close(self) -> None:
        if self._loader is not None:
            self._loader.close()
        shutil.rmtree(self.root, ignore_errors=True)


def _checkpoint(case: Case, work: _Workspace, seed: int) -> Path:
    """The family's tiny model of the case, saved; a config the family's own model cannot build is no case."""
    directory = work.directory()
    try:
        tiny_checkpoint(case.family, directory, seed=seed, vocab_size=VOCAB, **case.sizes)
    except Exception:  # noqa: BLE001 - the family itself refuses this config: not a conformance failure
        reject()
    return directory


def _with_mixture(data: dict, rows: list[list[float]], on: str | None = None) -> dict:
    out = dict(data, hybrid=dict(data["hybrid"], mixture=fixed(rows)))
    if on is not None:
        out["hybrid"].update(embeddings=on, head=on)
        out["tokenizer"] = on
    return out


def _run_check(check: str, case: Case, work: _Workspace, seed: int) -> None:
    import torch

    from ..models.hybrid import lower

    directory = _checkpoint(case, work, seed)
    data = canonical_data(case.spec(directory))
    rs = resolve(data)
    names = list(rs.names)
    one_hot_rows = [[1.0 if n == case.name else 0.0 for n in names]] * case.blocks
    if check == "counts":
        inv.cost_model_matches_meta(case.family, rs.component(case.name).config)
    elif check == "parameters":
        inv.parameters_match_graph(lower(rs))
        inv.parameters_match_graph(lower(rs, selection=[case.name] * case.blocks))
    elif check == "one-hot":
        inv.one_hot_is_component(data, case.name)
    elif check == "zero-branch":
        inv.one_hot_is_component(data, case.partner_name)
    elif check == "generate":
        one_hot = resolve(_with_mixture(data, one_hot_rows, case.name))
        hybrid = lower(one_hot).eval()
        own = inv.reference_model(one_hot, case.name)
        ids, _, _ = inv.inputs(VOCAB, 6)
        ours, theirs = _greedy(hybrid, ids), _greedy(own, ids)
        if not torch.equal(ours, theirs):
            inv._fail("cached greedy generate is the component's own",
                      f"new tokens {ours.tolist()} where the family's own generate gives {theirs.tolist()}")
    elif check == "cache":
        uneven = [[0.75 if n == case.name else 0.25 for n in names]] * case.blocks
        inv.cached_decoding_is_recomputation(lower(resolve(_with_mixture(data, uneven))))
    elif check == "discretize":
        inv.discretized_is_one_hot(_with_mixture(data, one_hot_rows, case.name))
    elif check == "save-load":
        uneven = [[0.75 if n == case.name else 0.25 for n in names]] * case.blocks
        model = lower(resolve(_with_mixture(data, uneven)))
        with torch.no_grad():  # trained weights, not the initial ones (projectors at identity hide mix-ups)
            g = torch.Generator().manual_seed(seed)
            for p in model.parameters():
                p.add_(0.05 * torch.randn(p.shape, generator=g))
        inv.save_load_same_logits(model, fresh_process=work.fresh_process, loader=work.loader)
    else:
        raise ValueError(f"unknown check {check!r}; the checks are {', '.join(CHECKS)}")


def _greedy(model, ids):
    """Greedy ``generate`` of ``NEW_TOKENS`` tokens, never stopping at an end-of-sequence token, a row at a time
    (some families' own one-token step is right for a batch of one row only: RWKV's)."""
    import copy

    import torch

    saved = model.generation_config
    model.generation_config = copy.deepcopy(saved)
    model.generation_config.eos_token_id, model.generation_config.pad_token_id = None, 0
    try:
        with torch.no_grad():
            rows = [model.generate(row[None], attention_mask=torch.ones_like(row[None]), do_sample=False,
                                   max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS) for row in ids]
    finally:
        model.generation_config = saved
    return torch.cat(rows)[:, ids.shape[1]:]


def check_family(family: str, *, checks: Sequence[str] = CHECKS, examples: int = 10, seed: int = 0,
                 partner: str = "mamba", fresh_process: bool = True, widths: Sequence[int] = (16, 32),
                 heads: Sequence[int] = (2, 4), layers: tuple[int, int] = (1, 3)) -> None:
    """Run the conformance checks (``CHECKS``, in order) on ``examples`` drawn cases each; raise
    ``FamilyNonconformance`` for the first check that fails, with the smallest failing case. Cases are drawn
    from ``seed`` (the same cases every run), nothing is stored on disk outside a temporary directory;
    ``fresh_process``: load saved models in another process (``save-load``)."""
    unknown = [c for c in checks if c not in CHECKS]
    if unknown:
        raise ValueError(f"unknown checks {unknown}; the checks are {', '.join(CHECKS)}")
    name = family_of(family).name
    strategy = cases(name, partner, widths=widths, heads=heads, layers=layers)
    # the case shrinking ends at (one layer, one block, the narrowest width, ...) runs first: a bug it shows
    # needs no search and no shrinking
    smallest = find(strategy, lambda case: True, settings=settings(database=None))
    work = _Workspace(fresh_process)
    try:
        with one_thread():
            for check in checks:
                _check_cases(name, check, strategy, smallest, work, examples=examples, seed=seed)
    finally:
        work.close()


def _check_cases(family: str, check: str, strategy: st.SearchStrategy[Case], smallest: Case, work: _Workspace, *,
                 examples: int, seed: int) -> None:
    """One check on ``smallest`` then on ``examples`` drawn cases; ``FamilyNonconformance`` with the smallest
    failing one."""
    failures: list[tuple[Case, inv.InvariantFailed]] = []

    @hypothesis_seed(seed)
    @settings(max_examples=examples, deadline=None, database=None, derandomize=False, print_blob=False,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
    @given(case=strategy)
    @example(case=smallest)
    def run(case: Case) -> None:
        try:
            _run_check(check, case, work, seed)
        except inv.InvariantFailed as err:
            failures.append((case, err))
            raise

    try:
        run()
    except inv.InvariantFailed:
        case, err = failures[-1]  # hypothesis replays the shrunk case last (or the smallest, failing first)
        raise FamilyNonconformance(family, check, err.invariant, err.detail, case) from None


class FamilyConformance:
    """A pytest class of the conformance checks, one test each: subclass it with ``family = "my-family"``
    (and ``examples``, ``partner``, ``seed``, ``fresh_process`` to change the defaults)."""

    family: str = ""
    examples: int = 10
    partner: str = "mamba"
    seed: int = 0
    fresh_process: bool = True

    def _check(self, check: str) -> None:
        if not self.family:
            raise ValueError(f"{type(self).__name__} names no family: set family = '...'")
        check_family(self.family, checks=[check], examples=self.examples, seed=self.seed, partner=self.partner,
                     fresh_process=self.fresh_process)

    def test_parameter_counts_are_the_meta_device_s(self) -> None:
        self._check("counts")

    def test_hybrid_parameters_are_the_graph_s(self) -> None:
        self._check("parameters")

    def test_one_hot_is_the_family(self) -> None:
        self._check("one-hot")

    def test_a_branch_at_weight_zero_never_runs(self) -> None:
        self._check("zero-branch")

    def test_cached_generate_is_the_family_s(self) -> None:
        self._check("generate")

    def test_cached_decoding_is_recomputation(self) -> None:
        self._check("cache")

    def test_discretizing_one_hot_keeps_the_logits(self) -> None:
        self._check("discretize")

    def test_save_and_load_in_a_fresh_process(self) -> None:
        self._check("save-load")


# ---- the pytest plugin: pytest -p hybridc.testing.conformance --hybridc-family NAME -------------------------


def pytest_addoption(parser) -> None:
    group = parser.getgroup("hybridc", "hybridc's conformance kit for model families")
    group.addoption("--hybridc-family", action="append", default=[], metavar="NAME",
                    help="run the conformance checks on this family (repeat for several)")
    group.addoption("--hybridc-examples", type=int, default=10, metavar="N", help="cases per check (default 10)")
    group.addoption("--hybridc-seed", type=int, default=0, metavar="S", help="seed of the cases (default 0)")


def pytest_collection_modifyitems(session, config, items) -> None:
    import pytest

    class ConformanceItem(pytest.Item):
        def __init__(self, *, family: str, check: str, **kwargs):
            super().__init__(**kwargs)
            self.family, self.check = family, check

        def runtest(self) -> None:
            check_family(self.family, checks=[self.check], examples=config.getoption("hybridc_examples"),
                         seed=config.getoption("hybridc_seed"))

        def repr_failure(self, excinfo, style=None):
            if isinstance(excinfo.value, FamilyNonconformance):
                return str(excinfo.value)
            return super().repr_failure(excinfo, style=style)

        def reportinfo(self):
            return self.path, None, f"conformance[{self.family}-{self.check}]"

    for family in config.getoption("hybridc_family"):
        for check in CHECKS:
            items.append(ConformanceItem.from_parent(session, name=f"conformance[{family}-{check}]", family=family,
                                                     check=check))

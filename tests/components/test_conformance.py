"""Every family of the architecture table, used as a user uses it.

A tiny model of each family, built from its transformers config class and saved with ``save_pretrained``,
is a component (``from: DIR``) beside a tiny Mamba, under component names and an order drawn at random
for the family. The reference is always transformers' own model of the family, loaded from that directory
with ``AutoModelForCausalLM`` -- never hybridc's code:

- one-hot on the family (its embedding and head): the hybrid's logits are the family's own (padded and
  unpadded), and cached greedy decoding is the family's own ``generate`` (unpadded and left-padded);
- one-hot on Mamba, the family beside it with weight 0 in every block (its branch never runs, its cache
  never fills): generation is Mamba's own, left padding included;
- the hybrid saved, the directory moved and the component sources deleted, loads as the same model;
- the discretized export is the family's plain format, and loads in a process that never imports hybridc;
- a hybrid of the family with Mamba trains, is killed after its first checkpoint, and resumes to the
  weights of an uninterrupted run (``-m slow`` for every family; the default suite runs one of each kind).
"""

from __future__ import annotations

import copy
import json
import random
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM

from hybridc.components.registry import get_family
from hybridc.models.export import export
from hybridc.models.hybrid import lower
from hybridc.spec import load_spec
from hybridc.spec.canonical import MODULE_ATTRIBUTES
from tests.tiny_models import ALL_FAMILIES, TINY_COMMON, tiny_config

ROOT = Path(__file__).resolve().parents[2]
VOCAB = TINY_COMMON["vocab_size"]
TOL = 1e-4
NEW_TOKENS = 6
RESERVED = {"mix", "bytes", "all", "none", "null", "true", "false", "mamba"} | MODULE_ATTRIBUTES
# RWKV's own one-token step is right for a batch of one row only (it broadcasts a (B, d) state against
# (B, 1, d) inputs): its padded batches are generated row by row by transformers, and compared so.
ROW_BY_ROW = {"rwkv"}
# one family of each kind trains, is killed and resumes in the default suite; all of them with -m slow
KILLED_BY_DEFAULT = ("qwen3", "gemma3", "falcon-h1", "zamba2", "rwkv")
BUILT: dict[str, tuple] = {}  # family -> (its one-hot hybrid, its own logits on inputs()), built once


def drawn_names(family: str) -> tuple[str, str, bool]:
    """(the family's component name, Mamba's, whether the family is listed second): drawn per family."""
    rng = random.Random(f"conformance:{family}")
    letters = "abcdefghijklmnopqrstuvwxyz_"

    def name() -> str:
        while True:
            word = rng.choice(letters[:-1]) + "".join(rng.choice(letters) for _ in range(rng.randint(0, 7)))
            if word not in RESERVED:
                return word

    first, second = name(), name()
    while second == first:
        second = name()
    return first, second, rng.random() < 0.5


def layers_of(family: str) -> int:
    config = tiny_config(family)
    return get_family(family).shape(config).num_layers


def spec_text(family: str, family_dir: Path, mamba_dir: Path, on_family: bool) -> str:
    """A two-block hybrid of the family and Mamba, one-hot on the family (its embedding and head) or on Mamba."""
    own, other, family_second = drawn_names(family)
    entries = [(own, family_dir, f"0..1, 1..{layers_of(family)}"), (other, mamba_dir, "0..2, 2..3")]
    if family_second:
        entries.reverse()
    chosen = own if on_family else other
    row = ", ".join("1" if name == chosen else "0" for name, _, _ in entries)
    components = "".join(f"  {name}:\n    from: {path}\n    blocks: {blocks}\n" for name, path, blocks in entries)
    return (f"hybridc: 1\nname: conformance\ncomponents:\n{components}"
            f"hybrid:\n  embeddings: {chosen}\n  head: {chosen}\n  mixture: fixed([[{row}], [{row}]])\n")


def write(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "spec.yaml"
    path.write_text(text)
    return path


def reference(path: Path) -> torch.nn.Module:
    """transformers' own model of the directory (eval, float32)."""
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


def inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Token ids (2, 12) (no padding token among them), the same left-padded (row 1 starts 4 tokens late,
    after 4 padding tokens 0) and its mask."""
    ids = torch.randint(3, VOCAB, (2, 12), generator=torch.Generator().manual_seed(7))
    mask = torch.ones_like(ids)
    mask[1, :4] = 0
    return ids, ids.masked_fill(mask == 0, 0), mask


def greedy(model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor | None, rows: bool = False) -> torch.Tensor:
    """Greedy ``generate``, never stopping early; new tokens only. ``rows``: one row at a time."""
    if rows:
        return torch.cat([greedy(model, ids[i : i + 1], None if mask is None else mask[i : i + 1])
                          for i in range(ids.shape[0])])
    return without_eos(model, lambda: model.generate(ids, attention_mask=mask, do_sample=False,
                                                     max_new_tokens=NEW_TOKENS))[:, ids.shape[1]:]


def without_eos(model: torch.nn.Module, run):
    """``run()`` with the model's generation config stripped of its end-of-sequence token (``generate``
    fills every unset value from the model's own config, so it must be unset there) and padding with 0."""
    saved = model.generation_config
    model.generation_config = copy.deepcopy(saved)
    model.generation_config.eos_token_id, model.generation_config.pad_token_id = None, 0
    try:
        with torch.no_grad():
            return run()
    finally:
        model.generation_config = saved


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape and torch.isfinite(a).all() and torch.isfinite(b).all()
    return (a - b).abs().max().item()


@pytest.fixture(scope="module")
def sources(tiny_pretrained, tmp_path_factory):
    """``(family) -> (family_dir, mamba_dir)``: each family's own copy of the tiny checkpoints, so that
    tests may delete them."""

    def get(family: str) -> tuple[Path, Path]:
        base = tmp_path_factory.mktemp(f"sources-{family}")
        family_dir, mamba_dir = base / "family", base / "mamba"
        shutil.copytree(tiny_pretrained(family), family_dir)
        shutil.copytree(tiny_pretrained("mamba"), mamba_dir)
        return family_dir, mamba_dir

    return get


@pytest.mark.parametrize("family", ALL_FAMILIES)
def test_one_hot_on_the_family_is_the_family(family: str, sources, tmp_path) -> None:
    family_dir, mamba_dir = sources(family)
    own = reference(family_dir)
    hybrid = lower(load_spec(write(tmp_path / "spec", spec_text(family, family_dir, mamba_dir, True)))).eval()
    ids, padded, mask = inputs()
    with torch.no_grad():
        assert max_diff(hybrid(ids).logits, own(ids).logits) <= TOL
        ours, expected = hybrid(padded, attention_mask=mask).logits, own(padded, attention_mask=mask).logits
        real = mask.bool()
        assert max_diff(ours[real], expected[real]) <= TOL
    rows = family in ROW_BY_ROW
    assert torch.equal(greedy(hybrid, ids, None), greedy(own, ids, None, rows=rows))
    assert torch.equal(greedy(hybrid, padded, mask), greedy(own, padded, mask, rows=rows))
    with torch.no_grad():
        BUILT[family] = (hybrid, own(ids).logits.contiguous())  # for the export test

    # saved, moved, sources deleted: the same model (loaded as transformers loads any model)
    saved, moved = tmp_path / "saved", tmp_path / "moved"
    hybrid.save_pretrained(saved)
    shutil.move(str(saved), moved)
    shutil.rmtree(family_dir)
    shutil.rmtree(mamba_dir)
    again = AutoModelForCausalLM.from_pretrained(moved).eval()
    assert type(again).__name__ == "HybridForCausalLM"
    with torch.no_grad():
        assert torch.equal(again(padded, attention_mask=mask).logits, hybrid(padded, attention_mask=mask).logits)


@pytest.mark.parametrize("family", ALL_FAMILIES)
def test_a_branch_that_never_runs_keeps_no_cache(family: str, sources, tmp_path) -> None:
    """One-hot on Mamba beside the family (weight 0 in every block): Mamba's own generation, padded or not."""
    family_dir, mamba_dir = sources(family)
    own = reference(mamba_dir)
    hybrid = lower(load_spec(write(tmp_path, spec_text(family, family_dir, mamba_dir, False)))).eval()
    ids, padded, mask = inputs()
    assert torch.equal(greedy(hybrid, padded, mask), greedy(own, padded, mask))
    assert torch.equal(greedy(hybrid, ids, None), greedy(own, ids, None))


def test_plain_exports_load_without_hybridc(sources, tmp_path) -> None:
    """Every family's one-hot hybrid exports as the family's plain model; a process that never imports
    hybridc loads each with ``AutoModelForCausalLM`` and computes the family's own logits."""
    ids, _, _ = inputs()
    expected = {}
    for family in ALL_FAMILIES:
        if family not in BUILT:  # (run alone, without the test above)
            family_dir, mamba_dir = sources(family)
            hybrid = lower(load_spec(write(tmp_path / family, spec_text(family, family_dir, mamba_dir, True)))).eval()
            with torch.no_grad():
                BUILT[family] = (hybrid, reference(family_dir)(ids).logits.contiguous())
        hybrid, expected[family] = BUILT[family]
        exported = export(hybrid, tmp_path / "exports" / family)
        assert exported.kind == family, family
    save_file({**expected, "_ids": ids}, str(tmp_path / "expected.safetensors"))
    script = textwrap.dedent(f"""\
        import json, sys, torch
        from safetensors.torch import load_file
        from transformers import AutoModelForCausalLM
        expected = load_file({str(tmp_path / "expected.safetensors")!r})
        ids, worst = expected.pop("_ids"), {{}}
        for family, logits in expected.items():
            model = AutoModelForCausalLM.from_pretrained({str(tmp_path / "exports")!r} + "/" + family).eval()
            with torch.no_grad():
                worst[family] = (model(ids).logits - logits).abs().max().item()
        assert not any(m.startswith("hybridc") for m in sys.modules)
        print(json.dumps(worst))
        """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    worst = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(worst) == set(ALL_FAMILIES)
    assert {family: diff for family, diff in worst.items() if diff > TOL} == {}


# ---- training, killed and resumed ------------------------------------------------------------------------


def _train_spec(family: str, family_dir: Path, mamba_dir: Path) -> str:
    own, other, family_second = drawn_names(family)
    entries = [(own, family_dir, f"0..1, 1..{layers_of(family)}"), (other, mamba_dir, "0..2, 2..3")]
    if family_second:
        entries.reverse()
    components = "".join(f"  {name}:\n    from: {path}\n    blocks: {blocks}\n" for name, path, blocks in entries)
    return (f"hybridc: 1\nname: conformance\ncomponents:\n{components}"
            "hybrid:\n  mixture: search\n"
            "train:\n  seed: 5\n  checkpoint_every: 1\n  stages:\n"
            "    - {name: search, data: 'recall(vocab=16, length=16, examples=64)', steps: 2, batch_size: 2}\n")


class Killed(BaseException):
    """What a kill -9 leaves, in-process: the run stops right after writing a checkpoint."""


KILLABLE = [pytest.param(f, marks=() if f in KILLED_BY_DEFAULT else pytest.mark.slow) for f in ALL_FAMILIES]


@pytest.mark.parametrize("family", KILLABLE)
def test_a_hybrid_with_mamba_trains_and_resumes_after_a_kill(family: str, sources, tmp_path, monkeypatch) -> None:
    from hybridc.train import run as run_module
    from hybridc.train.run import TrainOptions, train

    family_dir, mamba_dir = sources(family)
    spec = write(tmp_path / "spec", _train_spec(family, family_dir, mamba_dir))
    straight = train(load_spec(spec), TrainOptions(out_dir=tmp_path / "straight", quiet=True), say=lambda m: None)
    losses = [json.loads(line)["loss"] for line in (straight.run_dir / "metrics.jsonl").read_text().splitlines()
              if json.loads(line)["event"] == "train"]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))

    original = run_module.save_checkpoint

    def save_then_die(run_dir, model, optim_state, position, **kwargs):
        original(run_dir, model, optim_state, position, **kwargs)
        if position.global_step == 1:
            raise Killed

    monkeypatch.setattr(run_module, "save_checkpoint", save_then_die)
    with pytest.raises(Killed):
        train(load_spec(spec), TrainOptions(out_dir=tmp_path / "killed", quiet=True), say=lambda m: None)
    monkeypatch.setattr(run_module, "save_checkpoint", original)
    assert not (tmp_path / "killed" / "final").exists()
    resumed = train(load_spec(spec), TrainOptions(out_dir=tmp_path / "killed", resume=True, quiet=True),
                    say=lambda m: None)
    a = load_file(str(straight.final_dir / "model.safetensors"))
    b = load_file(str(resumed.final_dir / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---- training mode ----------------------------------------------------------------------------------------


def dropout_keys(family: str) -> dict[str, float]:
    """Every dropout probability of the family's config, set to 0.1."""
    defaults = get_family(family).defaults()
    return {key: 0.1 for key, value in defaults.items()
            if ("drop" in key) and isinstance(value, float) and not isinstance(value, bool)}


@pytest.mark.parametrize("family", ALL_FAMILIES)
def test_training_mode_draws_the_family_s_dropout_masks(family: str) -> None:
    """With every dropout of the family on, the parts (as the hybrid runs them: one context, segments,
    logit transform) draw the same masks in the same order as the family's own forward."""
    from hybridc.components.adapters import build_model, load_adapter
    from hybridc.components.logits import apply_logit_ops

    keys = dropout_keys(family)
    model = build_model(get_family(family), tiny_config(family, **keys), seed=0).train()
    adapter = load_adapter(get_family(family), model)
    ids, _, _ = inputs()
    cuts = (0, 1, adapter.num_layers)
    with torch.no_grad():
        torch.manual_seed(3)
        expected = model(ids).logits
        torch.manual_seed(3)
        h = adapter.embedding()(ids)
        context = adapter.prepare(h)
        for start, stop in zip(cuts, cuts[1:]):
            h = adapter.segment(start, stop)(h, context=context)
        ours = apply_logit_ops(adapter.lm_head()(h), adapter.logit_ops())
        assert max_diff(ours, expected) <= TOL
        if keys:  # the masks are drawn: another seed, other logits
            torch.manual_seed(4)
            assert max_diff(model(ids).logits, expected) > 1e-4

"""Adapters cut each family's model into embedding -> segments -> head without changing its output."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import torch
from torch import nn

from hybridc.components.adapters import ComponentAdapter, build_model, config_class, load_adapter
from hybridc.components.pretrained import load_pretrained
from hybridc.components.logits import apply_logit_ops
from hybridc.components.registry import families, get_family
from tests.tiny_models import REPRESENTATIVE_FAMILIES, TINY_COMMON, tiny_config

FAMILIES = sorted(REPRESENTATIVE_FAMILIES)
ATTENTION = [name for name in FAMILIES if families()[name].has_attention]
# RWKV and xLSTM read no padding mask: a padded row is not the unpadded one, in the families themselves
PADDED = [name for name in FAMILIES if families()[name].architecture.padding]
LAYERS = TINY_COMMON["layers"]  # 3
VOCAB = TINY_COMMON["vocab_size"]
CUTS = [(0, 3), (0, 1, 3), (0, 2, 3), (0, 1, 2, 3)]  # whole, uneven splits, 1-layer segments
BATCH, LENGTH = 2, 16  # Mamba stays short: transformers' CPU scan loops over tokens
TOL = 1e-6


def input_ids(seed: int = 0) -> torch.Tensor:  # (B, T)
    return torch.randint(0, VOCAB, (BATCH, LENGTH), generator=torch.Generator().manual_seed(seed))


def padding_masks() -> dict[str, torch.Tensor]:  # name -> (B, T) 1/0
    right = torch.ones(BATCH, LENGTH, dtype=torch.long)
    right[0, 11:] = 0
    left = torch.ones(BATCH, LENGTH, dtype=torch.long)
    left[1, :5] = 0
    mixed = right.clone()
    mixed[1, :3] = 0
    return {"right": right, "left": left, "mixed": mixed}


def run_parts(
    adapter: ComponentAdapter,
    ids: torch.Tensor,
    cuts: Sequence[int],
    attention_mask: torch.Tensor | None = None,
) -> torch.Tensor:  # (B, T, V)
    h = adapter.embedding()(ids)  # (B, T, d)
    context = adapter.prepare(h, attention_mask)  # once: Zamba2's shared blocks read the embeddings
    for start, stop in zip(cuts, cuts[1:]):
        h = adapter.segment(start, stop)(h, context=context)
    return apply_logit_ops(adapter.lm_head()(h), adapter.logit_ops())


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape
    assert torch.isfinite(a).all() and torch.isfinite(b).all()
    return (a - b).abs().max().item()


@pytest.fixture(scope="module")
def pretrained(tiny_pretrained: Callable[[str], Path]) -> Callable[[str], nn.Module]:
    """``(family_name) -> model`` loaded back from the session's tiny checkpoint (eval mode)."""
    loaded: dict[str, nn.Module] = {}

    def get(name: str) -> nn.Module:
        if name not in loaded:
            loaded[name] = load_pretrained(get_family(name), tiny_pretrained(name)).eval()
        return loaded[name]

    return get


def fresh_model(name: str, seed: int = 0, **overrides) -> nn.Module:
    return build_model(get_family(name), tiny_config(name, **overrides), seed=seed).eval()


# ---- the invariant: parts reproduce the model ---------------------------------------------------


@pytest.mark.parametrize("cuts", CUTS, ids=lambda c: "-".join(map(str, c)))
@pytest.mark.parametrize("name", FAMILIES)
def test_parts_reproduce_logits(name: str, cuts: tuple[int, ...]) -> None:
    model = fresh_model(name)
    adapter = load_adapter(get_family(name), model)
    ids = input_ids()
    with torch.no_grad():
        assert max_diff(run_parts(adapter, ids, cuts), model(ids).logits) <= TOL


@pytest.mark.parametrize("name", FAMILIES)
def test_parts_reproduce_loaded_checkpoint(name: str, pretrained) -> None:
    model = pretrained(name)
    adapter = load_adapter(get_family(name), model)
    ids = input_ids(1)
    with torch.no_grad():
        reference = model(ids).logits
        for cuts in CUTS:
            assert max_diff(run_parts(adapter, ids, cuts), reference) <= TOL


@pytest.mark.parametrize("padding", ["right", "left", "mixed"])
@pytest.mark.parametrize("name", PADDED)
def test_parts_honour_padding_mask(name: str, padding: str, pretrained) -> None:
    """Attention families mask padded keys; Mamba/Mamba2 zero padded states, as their forward does."""
    model = pretrained(name)
    adapter = load_adapter(get_family(name), model)
    ids, mask = input_ids(2), padding_masks()[padding]
    with torch.no_grad():
        reference = model(ids, attention_mask=mask).logits
        assert max_diff(reference, model(ids).logits) > 1e-4  # the mask matters
        for cuts in [(0, 1, 3), (0, 2, 3)]:
            assert max_diff(run_parts(adapter, ids, cuts, attention_mask=mask), reference) <= TOL


@pytest.mark.parametrize("name", ["gpt2", "gpt-neox", "llama"])
def test_eager_attention_stays_causal(name: str) -> None:
    """Under eager attention a None mask means "attend everywhere": segments must build the causal one."""
    model = fresh_model(name)
    model.set_attn_implementation("eager")
    assert model.config._attn_implementation == "eager"
    adapter = load_adapter(get_family(name), model)
    ids = input_ids(3)
    with torch.no_grad():
        assert max_diff(run_parts(adapter, ids, (0, 1, 3)), model(ids).logits) <= TOL
        mask = padding_masks()["left"]
        parts = run_parts(adapter, ids, (0, 2, 3), attention_mask=mask)
        assert max_diff(parts, model(ids, attention_mask=mask).logits) <= TOL


@pytest.mark.parametrize("name", FAMILIES)
def test_segments_are_causal(name: str) -> None:
    """Changing token t changes no output before t."""
    adapter = load_adapter(get_family(name), fresh_model(name))
    ids = input_ids(4)
    changed = ids.clone()
    t = LENGTH // 2
    changed[:, t] = (changed[:, t] + 1) % VOCAB
    with torch.no_grad():
        a, b = run_parts(adapter, ids, (0, 1, 3)), run_parts(adapter, changed, (0, 1, 3))
    assert torch.equal(a[:, :t], b[:, :t])
    assert not torch.equal(a[:, t:], b[:, t:])


@pytest.mark.parametrize("name", FAMILIES)
def test_training_mode_matches_with_same_rng(name: str) -> None:
    """In training mode (GPT-2: dropout 0.1) parts draw the same dropout masks in the same order."""
    model = build_model(get_family(name), tiny_config(name), seed=0).train()
    adapter = load_adapter(get_family(name), model)
    ids = input_ids(5)
    with torch.no_grad():
        torch.manual_seed(7)
        reference = model(ids).logits
        torch.manual_seed(7)
        parts = run_parts(adapter, ids, (0, 1, 3))
    assert max_diff(parts, reference) <= TOL
    if name == "gpt2":  # dropout is on: a different seed gives different logits
        torch.manual_seed(8)
        with torch.no_grad():
            assert max_diff(run_parts(adapter, ids, (0, 1, 3)), reference) > 1e-4


# ---- parts share the model's parameters ---------------------------------------------------------


def param_ids(module: nn.Module) -> set[int]:
    return {id(p) for p in module.parameters()}


@pytest.mark.parametrize("name", FAMILIES)
def test_parts_share_parameters(name: str) -> None:
    model = fresh_model(name)
    adapter = load_adapter(get_family(name), model)
    model_params = param_ids(model)
    parts = [adapter.embedding(), adapter.lm_head()] + [adapter.segment(i, i + 1) for i in range(LAYERS)]
    for part in parts:
        assert param_ids(part) <= model_params
    covered = set().union(*(param_ids(part) for part in parts))
    assert covered == model_params  # every parameter belongs to some part
    seg = adapter.segment(0, LAYERS)
    assert all(a is b for a, b in zip(seg.layers, adapter.layers()))


@pytest.mark.parametrize("name", FAMILIES)
def test_loading_weights_into_model_is_visible_in_parts(name: str, pretrained) -> None:
    model = fresh_model(name, seed=99)
    adapter = load_adapter(get_family(name), model)
    ids = input_ids(6)
    with torch.no_grad():
        before = run_parts(adapter, ids, (0, 2, 3))
        model.load_state_dict(pretrained(name).state_dict())
        after = run_parts(adapter, ids, (0, 2, 3))
        assert max_diff(after, pretrained(name)(ids).logits) <= TOL
    assert max_diff(before, after) > 1e-4


@pytest.mark.parametrize("name", FAMILIES)
def test_head_tied_as_the_model(name: str) -> None:
    for tie in (True, False):
        model = fresh_model(name, tie_word_embeddings=tie)
        adapter = load_adapter(get_family(name), model)
        tied = get_family(name).shape(model.config.to_dict()).tied_embeddings
        assert tied == (tie and name not in ("xlstm", "nemotron-h"))  # these two never tie
        assert (adapter.lm_head().weight is adapter.embedding().weight) == tied


# ---- ranges, loading, building -------------------------------------------------------------------


@pytest.mark.parametrize("name", FAMILIES)
def test_segment_range_checked(name: str) -> None:
    adapter = load_adapter(get_family(name), fresh_model(name))
    assert adapter.num_layers == LAYERS
    for start, stop in [(1, 1), (2, 1), (-1, 2), (0, LAYERS + 1)]:
        with pytest.raises(ValueError):
            adapter.segment(start, stop)


def test_adapter_classes_match_families() -> None:
    for name, family in families().items():
        assert config_class(family).model_type in family.model_types
        adapter = load_adapter(family, fresh_model(name))
        assert adapter.family_name == name


def test_load_pretrained_rejects_other_family(tiny_pretrained) -> None:
    with pytest.raises(ValueError, match="not a llama model"):
        load_pretrained(get_family("llama"), tiny_pretrained("gpt2"))


@pytest.mark.parametrize("name", FAMILIES)
def test_loaded_checkpoint_is_float32(name: str, pretrained) -> None:
    assert all(p.dtype == torch.float32 for p in pretrained(name).parameters())


def test_build_model_is_deterministic_and_keeps_global_rng() -> None:
    family = get_family("gpt-neox")
    config = tiny_config("gpt-neox")
    state = torch.random.get_rng_state()
    a = build_model(family, config, seed=3).state_dict()
    b = build_model(family, config, seed=3).state_dict()
    c = build_model(family, config, seed=4).state_dict()
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize("name", PADDED)
def test_left_padding_with_shifted_positions_matches_unpadded(name: str) -> None:
    """Positions counted past the padding (as ``generate`` does) make a left-padded row compute what
    the unpadded one does; Mamba/Mamba2 need no positions (padded states are zeroed)."""
    adapter = load_adapter(get_family(name), fresh_model(name))
    ids = input_ids(8)[:1, :12]  # (1, 12)
    pad = 4
    padded = torch.cat([torch.zeros(1, pad, dtype=torch.long), ids], dim=1)
    mask = torch.cat([torch.zeros(1, pad, dtype=torch.long), torch.ones_like(ids)], dim=1)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        reference = run_parts(adapter, ids, (0, 1, 3))
        h = adapter.embedding()(padded)
        context = adapter.prepare(h, mask, positions)
        for start, stop in [(0, 2), (2, 3)]:
            h = adapter.segment(start, stop)(h, context=context)
        out = apply_logit_ops(adapter.lm_head()(h), adapter.logit_ops())[:, pad:]
    assert max_diff(out, reference) <= 1e-5

"""Mamba segments with our scan compute what transformers' own Mamba computes, forward and backward."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hybridc.components.adapters import build_model, load_adapter
from hybridc.components.adapters.mamba import MambaAdapter
from hybridc.components.adapters.mamba_fast import block_forward
from hybridc.components.registry import get_family
from tests.tiny_models import TINY_COMMON, tiny_config

FAMILY = get_family("mamba")
VOCAB = TINY_COMMON["vocab_size"]
BATCH, LENGTH = 2, 40  # several chunks per sequence, not a multiple of the chunk
TOL = 1e-5  # relative to the reference's largest magnitude (absolute below 1)
BACKENDS = ["auto", "chunked", "reference"]


def mamba(seed: int = 0, **overrides) -> nn.Module:
    return build_model(FAMILY, tiny_config("mamba", **overrides), seed=seed)


def ids(seed: int = 0, length: int = LENGTH) -> torch.Tensor:
    return torch.randint(0, VOCAB, (BATCH, length), generator=torch.Generator().manual_seed(seed))


def padding(kind: str | None) -> torch.Tensor | None:
    if kind is None:
        return None
    mask = torch.ones(BATCH, LENGTH, dtype=torch.long)
    if kind in ("right", "mixed"):
        mask[0, 29:] = 0
    if kind in ("left", "mixed"):
        mask[1, :7] = 0
    return mask


def parts_logits(model: nn.Module, x: torch.Tensor, mask: torch.Tensor | None, backend: str) -> torch.Tensor:
    adapter = MambaAdapter(model, scan_backend=backend)
    h = adapter.embedding()(x)
    for start, stop in [(0, 2), (2, 3)]:
        h = adapter.segment(start, stop)(h, attention_mask=mask)
    return adapter.lm_head()(h)


def loss_of(logits: torch.Tensor, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """A next-token loss that also weighs padded positions' logits (their gradients must match too)."""
    ce = nn.functional.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), x[:, 1:].reshape(-1))
    return ce + 1e-2 * logits.pow(2).mean()


def logits_and_grads(model: nn.Module, x, mask, backend: str | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """backend None: the model's own forward."""
    model.zero_grad()
    logits = model(x, attention_mask=mask).logits if backend is None else parts_logits(model, x, mask, backend)
    loss_of(logits, x, mask).backward()
    return logits.detach(), {name: p.grad.clone() for name, p in model.named_parameters()}


def scaled_diff(a: torch.Tensor, ref: torch.Tensor) -> float:
    assert a.shape == ref.shape and torch.isfinite(a).all()
    return ((a - ref).abs().max() / ref.abs().max().clamp(min=1)).item()


@pytest.mark.parametrize("mask_kind", [None, "right", "left", "mixed"])
@pytest.mark.parametrize("train", [False, True])
def test_segments_match_model_forward_and_backward(train: bool, mask_kind: str | None) -> None:
    model = mamba().train(train)
    x, mask = ids(1), padding(mask_kind)
    ref_logits, ref_grads = logits_and_grads(model, x, mask, None)
    if mask is not None:
        assert scaled_diff(model(x).logits.detach(), ref_logits) > 1e-4  # the mask matters
    for backend in BACKENDS:
        logits, grads = logits_and_grads(model, x, mask, backend)
        assert scaled_diff(logits, ref_logits) <= TOL, backend
        for name, g in ref_grads.items():
            assert scaled_diff(grads[name], g) <= TOL, (backend, name)


def test_reference_backend_is_bit_for_bit() -> None:
    """Our mixer with transformers' own scan loop reproduces the model exactly."""
    model = mamba(seed=1).eval()
    x, mask = ids(2), padding("mixed")
    ref_logits, ref_grads = logits_and_grads(model, x, mask, None)
    logits, grads = logits_and_grads(model, x, mask, "reference")
    assert torch.equal(logits, ref_logits)
    assert all(torch.allclose(grads[n], g, rtol=0, atol=1e-7) for n, g in ref_grads.items())


@pytest.mark.parametrize(
    "overrides",
    [
        {"residual_in_fp32": False},
        {"use_bias": True, "use_conv_bias": False},
        {"state_size": 3, "time_step_rank": 5, "conv_kernel": 2, "intermediate_size": 24},
    ],
    ids=["residual-in-input-dtype", "biases", "odd-sizes"],
)
def test_config_variants(overrides: dict) -> None:
    model = mamba(seed=2, **overrides).train()
    x, mask = ids(3), padding("left")
    ref_logits, ref_grads = logits_and_grads(model, x, mask, None)
    logits, grads = logits_and_grads(model, x, mask, "chunked")
    assert scaled_diff(logits, ref_logits) <= TOL
    for name, g in ref_grads.items():
        assert scaled_diff(grads[name], g) <= TOL, name


def test_transformers_backend_calls_the_block() -> None:
    model = mamba().eval()
    x = ids(4)
    with torch.no_grad():
        assert torch.equal(parts_logits(model, x, None, "transformers"), model(x).logits)


def test_block_forward_matches_block_in_bfloat16() -> None:
    """Dtypes follow the block: bf16 weights, float32 residual stream (residual_in_fp32)."""
    model = mamba(seed=5).to(torch.bfloat16).eval()
    block = model.backbone.layers[0]
    h = model.backbone.embeddings(ids(5))
    with torch.no_grad():
        ref = block(h)
        out = block_forward(block, h, backend="chunked")
    assert out.dtype == ref.dtype == torch.float32
    assert scaled_diff(out, ref) <= 0.05  # bf16: the reference rounds its state to bf16 every token


def test_scan_backend_selection() -> None:
    model = mamba()
    adapter = load_adapter(FAMILY, model)
    assert adapter.scan_backend == "auto"
    seg = adapter.segment(0, 2)
    assert seg.scan_backend == "auto" and "scan_backend='auto'" in repr(seg)
    assert adapter.segment(0, 2, scan_backend="transformers").scan_backend == "transformers"
    assert MambaAdapter(model, scan_backend="chunked").segment(1, 3).scan_backend == "chunked"
    assert all(a is b for a, b in zip(seg.layers, adapter.layers()))  # still the model's own blocks
    with pytest.raises(ValueError, match="scan backend"):
        MambaAdapter(model, scan_backend="fast")
    with pytest.raises(ValueError, match="scan backend"):
        adapter.segment(0, 1, scan_backend="fast")
    seg.scan_backend = "fast"
    with pytest.raises(ValueError, match="scan backend"):
        seg(torch.zeros(1, 3, TINY_COMMON["hidden_size"]))


def cached_prefill(model: nn.Module, x: torch.Tensor, mask, backend: str):
    """Prefill the segments [0, 2), [2, 3) with a cache; then decode three tokens. Returns the cache and
    every step's logits (B, T + 3, V)."""
    adapter = MambaAdapter(model, scan_backend=backend)
    segments = [adapter.segment(0, 2), adapter.segment(2, 3)]
    cache = adapter.new_cache()
    logits = []
    for t in range(4):
        tokens = x if t == 0 else logits[-1][:, -1:].argmax(-1)
        h = adapter.embedding()(tokens)
        step_mask = None if mask is None else torch.cat([mask, torch.ones(BATCH, t, dtype=mask.dtype)], 1)
        context = adapter.prepare(h, step_mask, None, cache)
        for segment in segments:
            h = segment(h, context=context)
        logits.append(adapter.lm_head()(h))
        if t == 0:
            states = [(cache.layers[i].conv_states[0].clone(), cache.layers[i].recurrent_states[0].clone())
                      for i in range(3)]
    return states, torch.cat(logits, dim=1)


@pytest.mark.parametrize("length", [2, LENGTH])  # shorter than the conv kernel (4), and several chunks
@pytest.mark.parametrize("mask_kind", [None, "left"])
def test_cached_prefill_with_our_scan_fills_the_cache_as_transformers_does(length: int, mask_kind) -> None:
    model = mamba(seed=6).eval()
    x = ids(6, length)
    mask = None if mask_kind is None else padding(mask_kind)[:, -length:].clone()
    if mask is not None:
        mask[1, 0] = 0
    with torch.no_grad():
        ref_states, ref_logits = cached_prefill(model, x, mask, "transformers")
        states, logits = cached_prefill(model, x, mask, "chunked")
    assert torch.equal(states[0][0], ref_states[0][0])  # the first layer's conv inputs: same ops, same numbers
    for (conv, ssm), (ref_conv, ref_ssm) in zip(states, ref_states):
        assert conv.shape == ref_conv.shape and scaled_diff(conv, ref_conv) <= TOL
        assert ssm.dtype == ref_ssm.dtype and scaled_diff(ssm, ref_ssm) <= TOL
        assert ref_ssm.abs().max() > 0
    assert scaled_diff(logits, ref_logits) <= TOL


def chunked_feed(model: nn.Module, x: torch.Tensor, mask, backend: str, cuts=(7, 16, 17)) -> torch.Tensor:
    """Feed x through segments [0, 2), [2, 3) with a cache, in pieces cut at ``cuts``: (B, T, V) logits."""
    adapter = MambaAdapter(model, scan_backend=backend)
    segments = [adapter.segment(0, 2), adapter.segment(2, 3)]
    cache = adapter.new_cache()
    logits, bounds = [], [0, *cuts, x.shape[1]]
    for start, stop in zip(bounds, bounds[1:]):
        h = adapter.embedding()(x[:, start:stop])
        context = adapter.prepare(h, None if mask is None else mask[:, :stop], None, cache)
        for segment in segments:
            h = segment(h, context=context)
        logits.append(adapter.lm_head()(h))
    return torch.cat(logits, dim=1)


@pytest.mark.parametrize("mask_kind", [None, "left"])
def test_several_tokens_after_a_filled_cache_continue_its_state(mask_kind, monkeypatch) -> None:
    """Pieces of several tokens after the prefill run our scan from the cached state (not a token loop)
    and give the logits of one full forward, as transformers' token-by-token path does."""
    import hybridc.components.adapters.mamba_fast as fast

    model = mamba(seed=7).eval()
    x, mask = ids(7), padding(mask_kind)
    started = []
    scan = fast.selective_scan
    monkeypatch.setattr(fast, "selective_scan", lambda *a, **k: started.append(k["initial_state"] is not None)
                        or scan(*a, **k))
    with torch.no_grad():
        full = model(x, attention_mask=mask).logits
        ours = chunked_feed(model, x, mask, "chunked")
        theirs = chunked_feed(model, x, mask, "transformers")
    assert scaled_diff(ours, full) <= TOL and scaled_diff(theirs, full) <= TOL
    assert started.count(True) == 3 * 2 and started.count(False) == 3  # 3 layers: 2 continuations, 1 prefill

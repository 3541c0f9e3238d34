"""The fused causal conv1d + SiLU computes what MambaMixer's conv does: torch's depthwise conv1d with
padding K - 1, cut to T, then SiLU; values and gradients, on the mixer's strided token-major slices."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hybridc.kernels.fused_conv import FusedConvSiLU, causal_conv1d_silu


def reference(x_tm: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """transformers' fallback (MambaMixer.slow_forward): channel-major conv1d, cut, act; back to token-major."""
    d, K = weight.shape
    T = x_tm.shape[1]
    y = F.conv1d(x_tm.transpose(1, 2), weight[:, None, :], bias, padding=K - 1, groups=d)[..., :T]
    return F.silu(y).transpose(1, 2)


def inputs(b: int, T: int, d: int, K: int, seed: int, dtype=torch.float32, bias: bool = True, scale: float = 1.0):
    """(the mixer's in_proj output (b, T, 2d), whose first half is the conv's input; weight (d, K); bias)."""
    g = torch.Generator().manual_seed(seed)
    wide = (scale * torch.randn(b, T, 2 * d, generator=g, dtype=torch.float64)).to(dtype)
    weight = torch.randn(d, K, generator=g, dtype=torch.float64).to(dtype).requires_grad_()
    b_ = torch.randn(d, generator=g, dtype=torch.float64).to(dtype).requires_grad_() if bias else None
    return wide, weight, b_


def values_and_grads(fn, wide, weight, bias, seed=1):
    """fn on the strided slice wide[..., :d]; its output and the gradients of <y, random>."""
    wide = wide.detach().clone().requires_grad_()
    y = fn(wide[..., : weight.shape[0]], weight, bias)
    gy = torch.randn(y.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(y.dtype)
    leaves = [t for t in (wide, weight, bias) if t is not None]
    return [y, *torch.autograd.grad(y, leaves, gy)]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(b=st.integers(1, 3), T=st.integers(1, 40), d=st.integers(1, 140), K=st.integers(1, 6), bias=st.booleans(),
       seed=st.integers(0, 2**16))
def test_fused_conv_is_the_mixers_conv(b: int, T: int, d: int, K: int, bias: bool, seed: int) -> None:
    wide, weight, b_ = inputs(b, T, d, K, seed, bias=bias)
    ours = values_and_grads(causal_conv1d_silu, wide, weight, b_)
    theirs = values_and_grads(reference, wide, weight, b_)
    for a, r in zip(ours, theirs):
        assert a.shape == r.shape
        assert ((a - r).abs().max() / r.abs().max().clamp(min=1)).item() <= 1e-5


def test_fused_conv_float64_gradcheck() -> None:
    wide, weight, bias = inputs(2, 9, 66, 4, seed=3, dtype=torch.float64)
    x = wide[..., :66].detach().requires_grad_()
    assert torch.autograd.gradcheck(FusedConvSiLU.apply, (x, weight, bias))


@pytest.mark.parametrize("scale", [1e-3, 30.0, 200.0])  # SiLU near 0, saturated, and far in both tails
def test_fused_conv_extreme_activations(scale: float) -> None:
    wide, weight, bias = inputs(2, 17, 70, 4, seed=5, scale=scale)
    ours = values_and_grads(causal_conv1d_silu, wide, weight, bias)
    theirs = values_and_grads(reference, wide, weight, bias)
    for a, r in zip(ours, theirs):
        assert torch.isfinite(a).all()
        assert ((a - r).abs().max() / r.abs().max().clamp(min=1)).item() <= 1e-5


def test_fused_conv_results_do_not_depend_on_the_thread_count() -> None:
    wide, weight, bias = inputs(3, 33, 200, 4, seed=7)
    before, runs = torch.get_num_threads(), []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            runs.append(values_and_grads(causal_conv1d_silu, wide, weight, bias))
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(a, b) for a, b in zip(*runs))

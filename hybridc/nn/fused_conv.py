"""Mamba's causal depthwise conv1d with its SiLU, fused and token-major (``mamba_kernels.c``).

    y[b, t, c] = silu(bias[c] + sum_k w[c, k] x[b, t - K + 1 + k, c])     (x = 0 before the first token)

what ``MambaMixer`` computes with ``conv1d(..., padding=K - 1, groups=I)[..., :T]`` and ``act``, but on
token-major (B, T, I) tensors: the mixer's input is a slice of its in_proj output and its output feeds
x_proj, both token-major, so the channel-major conv costs a transposing copy on each side, forward and
backward. Here x may be that slice as it is (rows of any stride), and nothing is saved but x and the
weights: the backward recomputes the pre-activation.
"""

from __future__ import annotations

import torch

from . import kernels
from .kernels import ptr


class FusedConvSiLU(torch.autograd.Function):
    """x (B, T, I) token-major (unit channel stride), weight (I, K), bias (I,) or None -> (B, T, I)."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        b, T, d = x.shape
        if x.stride(2) != 1 or x.stride(0) != T * x.stride(1):
            x = x.contiguous()
        K = weight.shape[1]
        wt = weight.t().contiguous()  # (K, I)
        y = x.new_empty(b, T, d)
        kernels.call("conv_fwd", x.dtype, b, T, d, K, x.stride(1), ptr(x), ptr(wt), ptr(bias), ptr(y))
        ctx.save_for_backward(x, wt, bias)
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gy):
        x, wt, bias = ctx.saved_tensors
        b, T, d = x.shape
        K = wt.shape[0]
        gy = gy.contiguous()
        g_x = x.new_empty(b, T, d)
        g_wt = x.new_empty(b, K, d)
        g_bias = x.new_empty(b, d)
        kernels.call("conv_bwd", x.dtype, b, T, d, K, x.stride(1), ptr(x), ptr(wt), ptr(bias), ptr(gy), ptr(g_x),
                     ptr(g_wt), ptr(g_bias))
        return g_x, g_wt.sum(0).t(), g_bias.sum(0) if bias is not None else None


def supports(x: torch.Tensor, weight: torch.Tensor, activation: str) -> bool:
    """Whether the fused conv runs this call: CPU, float32/float64, SiLU, a kernel of at most 16 taps."""
    return (not x.is_cuda and activation in ("silu", "swish") and x.dtype in (torch.float32, torch.float64)
            and weight.dtype == x.dtype and weight.shape[1] <= kernels.library().conv_max_kernel())


def causal_conv1d_silu(
    x: torch.Tensor,  # (B, T, I), token-major
    weight: torch.Tensor,  # (I, K)
    bias: torch.Tensor | None = None,  # (I,)
) -> torch.Tensor:  # (B, T, I)
    """silu(causal depthwise conv1d(x) + bias) on token-major tensors (see the module doc)."""
    return FusedConvSiLU.apply(x, weight, bias)

"""Mamba's causal depthwise conv1d with its SiLU, fused and token-major (``mamba_kernels.c``).

    y[b, t, c] = silu(bias[c] + sum_k w[c, k] x[b, t - K + 1 + k, c])     (x = 0 before the first token)

what ``MambaMixer`` computes with ``conv1d(..., padding=K - 1, groups=I)[..., :T]`` and ``act``, but on
token-major (B, T, I) tensors: the mixer's input is a slice of its in_proj output and its output feeds
x_proj, both token-major, so the channel-major conv costs a transposing copy on each side, forward and
backward. Here x may be that slice as it is (rows of any stride), and nothing is saved but x and the
weights: the backward recomputes the pre-activation. Forward and backward are PyTorch custom operators
(``hybridc::causal_conv1d_silu`` and its ``_backward``), so torch.compile and torch.export trace them.
"""

from __future__ import annotations

from typing import Optional

import torch

from . import library as kernels
from .library import ptr

# The kernels run as PyTorch custom operators (``torch.library``): opaque to torch.compile and torch.export, which
# trace them through their fake implementations (shapes only) and differentiate them through the autograd formula
# registered below; in eager mode they are a plain call of the C function.


def _token_major_rows(x: torch.Tensor) -> torch.Tensor:
    """x (B, T, I) as the kernel reads it: unit channel stride and batch rows T row-strides apart (a slice of
    in_proj's output is used in place), else a contiguous copy."""
    if x.stride(2) != 1 or x.stride(0) != x.shape[1] * x.stride(1):
        return x.contiguous()
    return x


@torch.library.custom_op("hybridc::causal_conv1d_silu", mutates_args=())
def _conv_forward(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    """x (B, T, I) token-major, weight (I, K), bias (I,) or None -> y (B, T, I) contiguous."""
    x = _token_major_rows(x)
    b, T, d = x.shape
    K = weight.shape[1]
    wt = weight.t().contiguous()  # (K, I)
    y = x.new_empty(b, T, d)
    kernels.call("conv_fwd", x.dtype, b, T, d, K, x.stride(1), ptr(x), ptr(wt), ptr(bias), ptr(y))
    return y


@_conv_forward.register_fake
def _(x, weight, bias):
    return x.new_empty(x.shape)


@torch.library.custom_op("hybridc::causal_conv1d_silu_backward", mutates_args=())
def _conv_backward(gy: torch.Tensor, x: torch.Tensor, weight: torch.Tensor,
                   bias: Optional[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """dL/dx (B, T, I), dL/dweight (I, K), dL/dbias (I,) (zeros without a bias), recomputing the pre-activation
    from x."""
    x = _token_major_rows(x)
    b, T, d = x.shape
    K = weight.shape[1]
    wt = weight.t().contiguous()
    gy = gy.contiguous()
    g_x = x.new_empty(b, T, d)
    g_wt = x.new_empty(b, K, d)
    g_bias = x.new_empty(b, d)
    kernels.call("conv_bwd", x.dtype, b, T, d, K, x.stride(1), ptr(x), ptr(wt), ptr(bias), ptr(gy), ptr(g_x),
                 ptr(g_wt), ptr(g_bias))
    return g_x, g_wt.sum(0).t().contiguous(), g_bias.sum(0) if bias is not None else g_bias.new_zeros(d)


@_conv_backward.register_fake
def _(gy, x, weight, bias):
    return x.new_empty(x.shape), weight.new_empty(weight.shape), x.new_empty(x.shape[2])


def _conv_setup(ctx, inputs, output) -> None:
    x, weight, bias = inputs
    ctx.save_for_backward(x, weight, bias)


def _conv_grad(ctx, gy):
    x, weight, bias = ctx.saved_tensors
    g_x, g_weight, g_bias = _conv_backward(gy, x, weight, bias)
    return g_x, g_weight, g_bias if bias is not None else None


_conv_forward.register_autograd(_conv_grad, setup_context=_conv_setup)


class FusedConvSiLU:
    """x (B, T, I) token-major (unit channel stride), weight (I, K), bias (I,) or None -> (B, T, I): the custom
    operator ``hybridc::causal_conv1d_silu`` (with its backward ``hybridc::causal_conv1d_silu_backward``)."""

    @staticmethod
    def apply(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        return _conv_forward(x, weight, bias)


def supports(x: torch.Tensor, weight: torch.Tensor, activation: str) -> bool:
    """Whether the fused conv runs this call: CPU, float32/float64, SiLU, a kernel of at most 16 taps."""
    return (not x.is_cuda and activation in ("silu", "swish") and x.dtype in (torch.float32, torch.float64)
            and weight.dtype == x.dtype and weight.shape[1] <= kernels.conv_max_kernel())


def causal_conv1d_silu(
    x: torch.Tensor,  # (B, T, I), token-major
    weight: torch.Tensor,  # (I, K)
    bias: torch.Tensor | None = None,  # (I,)
) -> torch.Tensor:  # (B, T, I)
    """silu(causal depthwise conv1d(x) + bias) on token-major tensors (see the module doc)."""
    return FusedConvSiLU.apply(x, weight, bias)

"""The fused CPU selective scan: one C pass per direction (``mamba_kernels.c``, see ``hybridc.kernels.library``).

What it computes is ``chunked_scan``'s recurrence (see ``hybridc.kernels.scan``) with the element-wise steps
the mixer puts around it (each only when given)::

    dt_t = softplus(delta_t + bias),   h_t = exp(dt_t * A) * h_{t-1} + dt_t * u_t * B_t,
    out_t = (sum_n C_t[n] h_t[n] + D * u_t) * silu(z_t)

but where the chunked backend runs thousands of small PyTorch ops over materialized (chunks, N, d)
tensors (memory-bound), then element-wise passes over (b, d, T) tensors around it, this one keeps each
group of 64 channels' state in cache and walks the tokens once, the element-wise steps included: the
forward stores the state before every chunk of ``CHUNK`` tokens, the backward recomputes a chunk's time
steps, decays, states and outputs from it and runs backwards through them. Float32 (with a polynomial 2^x
accurate to about 2e-7 relative, 0 where the true value is a subnormal below 1.2e-38, and softplus and
sigmoid built on it) and float64 (libm's exp2, log1p, exp). Parallel over (batch row, channel group); the results do not depend on the thread count
(sums across channel groups are made per group and added in a fixed order).

Both passes are PyTorch custom operators (``hybridc::selective_scan``, ``hybridc::selective_scan_backward``:
``torch.library``, with fake implementations and the backward registered as the forward's autograd formula), so
``torch.compile`` (without graph breaks) and ``torch.export`` trace a Mamba layer that runs them.
"""

from __future__ import annotations

from typing import Optional

import torch

from . import library as kernels
from .library import ptr
from .scan_inputs import compute_dtype, empty_scan

CHUNK = 16  # tokens per saved state: the backward's working set is 2 * CHUNK * N * 64 values per item
_LOG2E = 1.4426950408889634


def _token_major(x: torch.Tensor) -> torch.Tensor:
    """(b, c, T) -> (b, T, c) contiguous (no copy for a transposed view of a (b, T, c) tensor)."""
    return x.transpose(1, 2).contiguous()


@torch.library.custom_op("hybridc::selective_scan", mutates_args=())
def _scan_forward(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
                  h0: Optional[torch.Tensor], D: Optional[torch.Tensor], z: Optional[torch.Tensor],
                  bias: Optional[torch.Tensor], softplus: bool,
                  keep: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The forward pass (see ``FusedScan``): y (b, T, d) token-major, the last state (b, d, N), and the states before
    every chunk (b, K, N, d) for the backward when ``keep`` (else an empty tensor)."""
    b, d, T = u.shape
    N = A.shape[1]
    K = -(-T // CHUNK)
    u_t, delta_t, B_t, C_t = (_token_major(x) for x in (u, delta, B, C))
    z_t, zs = _rows(z)
    A2 = (A * _LOG2E).t().contiguous()  # (N, d)
    h0_t = _token_major(h0) if h0 is not None else None  # (b, N, d)
    D_c, bias_c = (x.contiguous() if x is not None else None for x in (D, bias))
    y = u.new_empty(b, T, d)
    hs = u.new_empty(b, K, N, d) if keep else u.new_empty(0)
    last = u.new_empty(b, N, d)
    kernels.call("scan_fwd", u.dtype, b, T, d, N, CHUNK, zs, int(softplus), ptr(u_t), ptr(delta_t), ptr(A2),
                 ptr(B_t), ptr(C_t), ptr(h0_t), ptr(bias_c), ptr(D_c), ptr(z_t), ptr(y), ptr(hs if keep else None),
                 ptr(last))
    return y, last.transpose(1, 2).contiguous(), hs


@_scan_forward.register_fake
def _(u, delta, A, B, C, h0, D, z, bias, softplus, keep):
    b, d, T = u.shape
    N = A.shape[1]
    hs = u.new_empty(b, -(-T // CHUNK), N, d) if keep else u.new_empty(0)
    return u.new_empty(b, T, d), u.new_empty(b, d, N), hs


@torch.library.custom_op("hybridc::selective_scan_backward", mutates_args=())
def _scan_backward(gy: torch.Tensor, u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                   C: torch.Tensor, hs: torch.Tensor, D: Optional[torch.Tensor], z: Optional[torch.Tensor],
                   bias: Optional[torch.Tensor], softplus: bool) -> list[torch.Tensor]:
    """The backward pass: dL/d of u, delta (b, T, d), A (d, N), B, C (b, T, N), the initial state (b, N, d), D,
    bias (d,) and z (b, T, d), from dL/dy ``gy`` (b, T, d) and the chunk states ``hs``; an absent input's gradient
    is an empty tensor."""
    u_t, delta_t, B_t, C_t = (_token_major(x) for x in (u, delta, B, C))
    z_t, zs = _rows(z)
    b, T, d = u_t.shape
    N = A.shape[1]
    groups = -(-d // kernels.library().scan_group_width())
    gy_t = gy.to(u_t.dtype).contiguous()
    A2 = (A * _LOG2E).t().contiguous()
    At = A.t().contiguous()
    D_c, bias_c = (x.contiguous() if x is not None else None for x in (D, bias))
    g_u, g_delta = torch.empty_like(u_t), torch.empty_like(u_t)
    g_A = u_t.new_empty(b, N, d)
    g_B, g_C = u_t.new_empty(groups, b, T, N), u_t.new_empty(groups, b, T, N)
    g_h0 = u_t.new_empty(b, N, d)
    g_D = u_t.new_empty(b, d) if D is not None else None
    g_bias = u_t.new_empty(b, d) if bias is not None else None
    g_z = torch.empty_like(u_t) if z is not None else None
    kernels.call("scan_bwd", u_t.dtype, b, T, d, N, CHUNK, zs, int(softplus), ptr(u_t), ptr(delta_t), ptr(A2),
                 ptr(At), ptr(B_t), ptr(C_t), ptr(hs), ptr(bias_c), ptr(D_c), ptr(z_t), ptr(gy_t), ptr(g_u),
                 ptr(g_delta), ptr(g_A), ptr(g_B), ptr(g_C), ptr(g_h0), ptr(g_D), ptr(g_bias), ptr(g_z))
    return [g_u, g_delta, g_A.sum(0).t().contiguous(), g_B.sum(0), g_C.sum(0), g_h0,
            g_D.sum(0) if g_D is not None else u_t.new_empty(0), g_bias.sum(0) if g_bias is not None else
            u_t.new_empty(0), g_z if g_z is not None else u_t.new_empty(0)]  # (outputs may not alias each other)


@_scan_backward.register_fake
def _(gy, u, delta, A, B, C, hs, D, z, bias, softplus):
    b, d, T = u.shape
    N = A.shape[1]
    return [u.new_empty(b, T, d), u.new_empty(b, T, d), A.new_empty(d, N), u.new_empty(b, T, N),
            u.new_empty(b, T, N), u.new_empty(b, N, d), u.new_empty(d if D is not None else 0),
            u.new_empty(d if bias is not None else 0), u.new_empty((b, T, d) if z is not None else (0,))]


def _scan_setup(ctx, inputs, output) -> None:
    u, delta, A, B, C, h0, D, z, bias, softplus, keep = inputs
    _, last, hs = output
    ctx.save_for_backward(u, delta, A, B, C, hs, D, z, bias)
    ctx.softplus, ctx.has_h0 = softplus, h0 is not None
    ctx.mark_non_differentiable(last, hs)


def _scan_grad(ctx, gy, _g_last, _g_hs):
    u, delta, A, B, C, hs, D, z, bias = ctx.saved_tensors
    if hs.numel() == 0 and u.shape[-1] > 0:
        raise RuntimeError("the fused scan ran without keeping its states (keep=False): it has no backward")
    g_u, g_delta, g_A, g_B, g_C, g_h0, g_D, g_bias, g_z = _scan_backward(gy, u, delta, A, B, C, hs, D, z, bias,
                                                                         ctx.softplus)
    return (g_u.transpose(1, 2), g_delta.transpose(1, 2), g_A, g_B.transpose(1, 2), g_C.transpose(1, 2),
            g_h0.transpose(1, 2) if ctx.has_h0 else None, g_D if D is not None else None,
            g_z.transpose(1, 2) if z is not None else None, g_bias if bias is not None else None, None, None)


_scan_forward.register_autograd(_scan_grad, setup_context=_scan_setup)


class FusedScan:
    """out = (C . h + D u) * silu(z) for h_t = exp(dt_t A) h_{t-1} + dt_t u_t B_t, dt = softplus(delta + bias),
    both directions in C (each of D, z, bias, softplus only when given): the custom operator
    ``hybridc::selective_scan`` and its backward ``hybridc::selective_scan_backward``.

    Inputs (b, d, T) / (d, N) / (b, N, T) / initial state (b, d, N) / D and bias (d,) / z (b, d, T), each
    None when absent, one dtype (float32 or float64); ``softplus`` (bool); ``keep`` says whether a backward
    will follow (the chunk states are then kept). Outputs: out (b, d, T) (a transposed view of token-major
    memory) and the last state (b, d, N), which carries no gradient.
    """

    @staticmethod
    def apply(u, delta, A, B, C, h0, D, z, bias, softplus: bool, keep: bool) -> tuple[torch.Tensor, torch.Tensor]:
        y, last, _ = _scan_forward(u, delta, A, B, C, h0, D, z, bias, softplus, keep)
        return y.transpose(1, 2), last


def _rows(z: torch.Tensor | None) -> tuple[torch.Tensor | None, int]:
    """z (b, d, T) as token-major rows for the kernel: (memory, elements between tokens). A transposed
    slice of a wider (b, T, .) tensor (the mixer's gate) is used in place; anything else is copied."""
    if z is None:
        return None, 0
    rows = z.transpose(1, 2)  # (b, T, d)
    b, T, d = rows.shape
    if rows.stride(2) == 1 and rows.stride(0) == T * rows.stride(1) and rows.stride(1) >= d:
        return rows, rows.stride(1)
    return rows.contiguous(), d


def fused_scan(
    u: torch.Tensor,  # (b, d, T)
    delta: torch.Tensor,  # (b, d, T)
    A: torch.Tensor,  # (d, N)
    B: torch.Tensor,  # (b, N, T)
    C: torch.Tensor,  # (b, N, T)
    initial_state: torch.Tensor | None = None,  # (b, d, N)
    *,
    D: torch.Tensor | None = None,  # (d,)
    z: torch.Tensor | None = None,  # (b, d, T)
    delta_bias: torch.Tensor | None = None,  # (d,)
    delta_softplus: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:  # (b, d, T), last state (b, d, N), in the compute dtype
    """The scan by the fused kernel, with the time step's bias and softplus and the output's D skip and
    silu(z) gate applied inside it (float32, or float64 when any input is). Without the keywords: the bare
    recurrence (``delta`` is then dt)."""
    if not torch.compiler.is_compiling():
        kernels.library()  # RuntimeError with the reason when the kernels do not build here
    given = [x for x in (u, delta, A, B, C, D, z, delta_bias) if x is not None]
    dtype = compute_dtype(*given)
    inputs = [x.to(dtype) if x is not None else None for x in (u, delta, A, B, C)]
    h0 = initial_state.to(dtype) if initial_state is not None else None
    D, z, delta_bias = (x.to(dtype) if x is not None else None for x in (D, z, delta_bias))
    keep = torch.is_grad_enabled() and any(x.requires_grad for x in (*given, initial_state) if x is not None)
    if u.shape[-1] == 0:
        return empty_scan(u, delta, A, h0, dtype)
    return FusedScan.apply(*inputs, h0, D, z, delta_bias, delta_softplus, keep)

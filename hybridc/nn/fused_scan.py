"""The fused CPU selective scan: one C pass per direction (``mamba_kernels.c``, see ``hybridc.nn.kernels``).

What it computes is ``chunked_scan``'s bare recurrence (see ``hybridc.nn.scan``)::

    h_t = exp(dt_t * A) * h_{t-1} + dt_t * u_t * B_t,   y_t = sum_n C_t[n] h_t[n]

but where the chunked backend runs thousands of small PyTorch ops over materialized (chunks, N, d)
tensors (memory-bound), this one keeps each group of 64 channels' state in cache and walks the tokens
once: the forward stores the state before every chunk of ``CHUNK`` tokens, the backward recomputes a
chunk's decays and states from it and runs backwards through them. Float32 (with a polynomial 2^x
accurate to about 2e-7 relative, 0 where the true value is a subnormal below 1.2e-38) and float64
(libm's exp2). Parallel over (batch row, channel group); the results do not depend on the thread count
(sums across channel groups are made per group and added in a fixed order).
"""

from __future__ import annotations

import torch

from . import kernels
from .kernels import ptr
from .scan_inputs import compute_dtype, empty_scan

CHUNK = 16  # tokens per saved state: the backward's working set is 2 * CHUNK * N * 64 values per item
_LOG2E = 1.4426950408889634


def _token_major(x: torch.Tensor) -> torch.Tensor:
    """(b, c, T) -> (b, T, c) contiguous (no copy for a transposed view of a (b, T, c) tensor)."""
    return x.transpose(1, 2).contiguous()


class FusedScan(torch.autograd.Function):
    """y = C . h for h_t = exp(dt_t A) h_{t-1} + dt_t u_t B_t, both directions in C.

    Inputs (b, d, T) / (d, N) / (b, N, T) / initial state (b, d, N) or None, one dtype (float32 or
    float64); ``keep`` says whether a backward will follow (the chunk states are then saved).
    Outputs: y (b, d, T) (a transposed view of token-major memory) and the last state (b, d, N).
    """

    @staticmethod
    def forward(ctx, u, dt, A, B, C, h0, keep: bool):
        b, d, T = u.shape
        N = A.shape[1]
        K = -(-T // CHUNK)
        u_t, dt_t, B_t, C_t = (_token_major(x) for x in (u, dt, B, C))
        A2 = (A * _LOG2E).t().contiguous()  # (N, d)
        h0_t = _token_major(h0) if h0 is not None else None  # (b, N, d)
        y = u.new_empty(b, T, d)
        hs = u.new_empty(b, K, N, d) if keep else None
        last = u.new_empty(b, N, d)
        kernels.call("scan_fwd", u.dtype, b, T, d, N, CHUNK, ptr(u_t), ptr(dt_t), ptr(A2), ptr(B_t), ptr(C_t),
                     ptr(h0_t), ptr(y), ptr(hs), ptr(last))
        if keep:
            ctx.save_for_backward(u_t, dt_t, A, A2, B_t, C_t, hs)
        last = last.transpose(1, 2).contiguous()  # (b, d, N)
        ctx.mark_non_differentiable(last)
        return y.transpose(1, 2), last

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gy, _g_last):
        u_t, dt_t, A, A2, B_t, C_t, hs = ctx.saved_tensors
        b, T, d = u_t.shape
        N = A.shape[1]
        groups = -(-d // kernels.library().scan_group_width())
        gy_t = _token_major(gy.to(u_t.dtype))
        At = A.t().contiguous()
        g_u, g_dt = torch.empty_like(u_t), torch.empty_like(u_t)
        g_A = u_t.new_empty(b, N, d)
        g_B, g_C = u_t.new_empty(groups, b, T, N), u_t.new_empty(groups, b, T, N)
        g_h0 = u_t.new_empty(b, N, d)
        kernels.call("scan_bwd", u_t.dtype, b, T, d, N, CHUNK, ptr(u_t), ptr(dt_t), ptr(A2), ptr(At), ptr(B_t),
                     ptr(C_t), ptr(hs), ptr(gy_t), ptr(g_u), ptr(g_dt), ptr(g_A), ptr(g_B), ptr(g_C), ptr(g_h0))
        return (
            g_u.transpose(1, 2),
            g_dt.transpose(1, 2),
            g_A.sum(0).t(),
            g_B.sum(0).transpose(1, 2),
            g_C.sum(0).transpose(1, 2),
            g_h0.transpose(1, 2) if ctx.needs_input_grad[5] else None,
            None,
        )


def fused_scan(
    u: torch.Tensor,  # (b, d, T)
    dt: torch.Tensor,  # (b, d, T)
    A: torch.Tensor,  # (d, N)
    B: torch.Tensor,  # (b, N, T)
    C: torch.Tensor,  # (b, N, T)
    initial_state: torch.Tensor | None = None,  # (b, d, N)
) -> tuple[torch.Tensor, torch.Tensor]:  # (b, d, T), last state (b, d, N), in the compute dtype
    """The bare recurrence by the fused kernel (float32, or float64 when any input is)."""
    kernels.library()  # RuntimeError with the reason when the kernels do not build here
    dtype = compute_dtype(u, dt, A, B, C)
    inputs = [x.to(dtype) for x in (u, dt, A, B, C)]
    h0 = initial_state.to(dtype) if initial_state is not None else None
    keep = torch.is_grad_enabled() and any(x.requires_grad for x in (u, dt, A, B, C, initial_state) if x is not None)
    if u.shape[-1] == 0:
        return empty_scan(u, dt, A, h0, dtype)
    return FusedScan.apply(*inputs, h0, keep)

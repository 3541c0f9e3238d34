"""Mamba's selective scan with a fast, exact CPU backend.

Shapes: b batch, d channels (``d_inner``), T tokens, N state size.

``selective_scan`` computes what transformers' ``mamba_selective_scan`` computes (its CPU path,
modeling_mamba.py in transformers 5.23)::

    dt    = softplus(delta + delta_bias)                  (each step only if asked)
    a_t   = exp(dt_t * A)                                 (b, d, N) per token
    h_t   = a_t * h_{t-1} + dt_t * B_t * u_t,  h_{-1} = 0  (b, d, N)
    y_t   = sum_n C_t[n] h_t[:, :, n]                     (b, d)
    y     = (y + D * u) * silu(z)                         (each term only if given)

Backends:

- ``"reference"``: a token loop as transformers writes it (same dtypes, same order of operations),
  but over ``unbind`` views, so autograd's backward stays linear in T. For tests.
- ``"chunked"``: pure PyTorch, a ``torch.autograd.Function`` with a hand-written backward. Tokens are
  cut into chunks of L; a two-level scan runs the recurrence over the L steps of many chunks at
  once (one batched op per step on (chunks, b, N, d) tensors), then carries the state across chunks
  with a short sequential pass. Nothing is exponentiated but ``dt_t * A`` itself (exactly what the
  reference exponentiates): multi-step decays are running products of those factors, so extreme
  decays (``exp`` underflowing to 0) behave as in the reference. Work and backward are linear in T;
  memory is the inputs plus one state per chunk (saved for backward) plus two tile buffers of at
  most ``max_tile_elements`` elements (chunks are processed in tiles of that size).
- ``"cuda"``: mamba-ssm's fused kernel (``selective_scan_fn``); needs ``mamba_ssm`` and CUDA tensors.
- ``"auto"``: ``"cuda"`` when mamba-ssm imports and the input is on a CUDA device, else ``"chunked"``.

Dtypes: the reference keeps the state in float32 (or wider), casts it to the input dtype before the
contraction with C, then adds ``D * u`` and gates with the dtypes it is given. The chunked backend
keeps everything in float32 (float64 for float64 input) up to the contraction, casts the scan output
to the reference's dtype, then applies D and z with the same expressions: the output dtype always
matches; in float32/float64 the values match to rounding; in half precision it rounds once instead
of at every token.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

BACKENDS = ("auto", "chunked", "reference", "cuda")
DEFAULT_MAX_TILE_ELEMENTS = 1 << 23  # 32 MiB per float32 tile buffer


def selective_scan(
    u: torch.Tensor,  # (b, d, T)
    delta: torch.Tensor,  # (b, d, T)
    A: torch.Tensor,  # (d, N)
    B: torch.Tensor,  # (b, N, T)
    C: torch.Tensor,  # (b, N, T)
    D: torch.Tensor | None = None,  # (d,)
    z: torch.Tensor | None = None,  # (b, d, T)
    delta_bias: torch.Tensor | None = None,  # (d,)
    delta_softplus: bool = False,
    *,
    backend: str = "auto",
    chunk_size: int | None = None,
    max_tile_elements: int = DEFAULT_MAX_TILE_ELEMENTS,
) -> torch.Tensor:  # (b, d, T)
    """Mamba's selective scan (see the module doc for the math, backends and dtypes).

    ``chunk_size`` (tokens per chunk) and ``max_tile_elements`` (size of the working buffers) only
    tune the chunked backend; by default the chunk is about the square root of the tokens per tile.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown selective-scan backend {backend!r}; expected one of {BACKENDS}")
    _check_shapes(u, delta, A, B, C, D, z, delta_bias)
    if backend == "auto":
        backend = "cuda" if u.is_cuda and _mamba_ssm_scan() is not None else "chunked"
    if backend == "cuda":
        return _scan_cuda(u, delta, A, B, C, D, z, delta_bias, delta_softplus)

    input_dtype = u.dtype
    dt = delta
    if delta_bias is not None:
        dt = dt + delta_bias.to(dt.dtype)[..., None]
    if delta_softplus:
        dt = F.softplus(dt)
    if backend == "reference":
        y = _scan_reference(u, dt, A, B, C)
    else:
        y = chunked_scan(u, dt, A, B, C, chunk_size=chunk_size, max_tile_elements=max_tile_elements)
        y = y.to(torch.promote_types(input_dtype, C.dtype))
    if D is not None:
        y = y + u * D[None, :, None]
    if z is not None:
        y = y * F.silu(z)
    return y


def _check_shapes(u, delta, A, B, C, D, z, delta_bias) -> None:
    if u.dim() != 3:
        raise ValueError(f"u must be (batch, d_inner, T), got {tuple(u.shape)}")
    b, d, T = u.shape
    if A.dim() != 2 or A.shape[0] != d:
        raise ValueError(f"A must be (d_inner={d}, N), got {tuple(A.shape)}")
    N = A.shape[1]
    expected = {"delta": (delta, (b, d, T)), "B": (B, (b, N, T)), "C": (C, (b, N, T))}
    if z is not None:
        expected["z"] = (z, (b, d, T))
    if D is not None:
        expected["D"] = (D, (d,))
    if delta_bias is not None:
        expected["delta_bias"] = (delta_bias, (d,))
    for name, (tensor, shape) in expected.items():
        if tuple(tensor.shape) != shape:
            raise ValueError(f"{name} must have shape {shape}, got {tuple(tensor.shape)}")


# ---- reference ------------------------------------------------------------------------------------


def _scan_reference(
    u: torch.Tensor,  # (b, d, T)
    dt: torch.Tensor,  # (b, d, T), bias and softplus applied
    A: torch.Tensor,  # (d, N)
    B: torch.Tensor,  # (b, N, T)
    C: torch.Tensor,  # (b, N, T)
) -> torch.Tensor:  # (b, d, T), u's dtype
    """transformers' recurrent loop, expression for expression, over ``unbind`` views of time."""
    b, d, T = u.shape
    input_dtype = u.dtype
    B = B.transpose(1, 2)  # (b, T, N)
    C = C.transpose(1, 2)
    discrete_A = torch.exp(A[None, :, None, :] * dt[:, :, :, None])  # (b, d, T, N)
    deltaB_u = dt[:, :, :, None] * B[:, None, :, :].float() * u[:, :, :, None].float()
    state = torch.zeros(b, d, A.shape[-1], dtype=input_dtype, device=u.device)
    outputs = []
    for a_t, x_t, c_t in zip(discrete_A.unbind(2), deltaB_u.unbind(2), C.unbind(1)):
        state = a_t * state + x_t
        outputs.append(torch.matmul(state.to(input_dtype), c_t.unsqueeze(-1))[:, :, 0])
    return torch.stack(outputs, dim=-1)


# ---- cuda -----------------------------------------------------------------------------------------


def _mamba_ssm_scan():
    """mamba-ssm's ``selective_scan_fn``, or None when it does not import (imported lazily)."""
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except Exception:  # ImportError, or a CUDA extension that fails to load
        return None
    return selective_scan_fn


def _scan_cuda(u, delta, A, B, C, D, z, delta_bias, delta_softplus) -> torch.Tensor:
    fn = _mamba_ssm_scan()
    if fn is None:
        raise RuntimeError("selective-scan backend 'cuda' needs mamba-ssm, which does not import here")
    if not u.is_cuda:
        raise RuntimeError("selective-scan backend 'cuda' needs CUDA tensors")
    return fn(u, delta, A, B, C, D=D, z=z, delta_bias=delta_bias, delta_softplus=delta_softplus)


# ---- chunked --------------------------------------------------------------------------------------


def chunked_scan(
    u: torch.Tensor,  # (b, d, T)
    dt: torch.Tensor,  # (b, d, T)
    A: torch.Tensor,  # (d, N)
    B: torch.Tensor,  # (b, N, T)
    C: torch.Tensor,  # (b, N, T)
    *,
    chunk_size: int | None = None,
    max_tile_elements: int = DEFAULT_MAX_TILE_ELEMENTS,
) -> torch.Tensor:  # (b, d, T) in the compute dtype
    """The bare recurrence ``y_t = C_t . h_t`` (no bias, softplus, D or z), chunked backend.

    Computes in float32, or float64 when any input is float64.
    """
    b, d, T = u.shape
    N = A.shape[1]
    dtype = torch.promote_types(torch.promote_types(dt.dtype, A.dtype), torch.float32)
    L, G = plan_chunks(T, b * d * N, chunk_size, max_tile_elements)
    return _ChunkedScan.apply(u.to(dtype), dt.to(dtype), A.to(dtype), B.to(dtype), C.to(dtype), L, G)


def plan_chunks(T: int, state_elements: int, chunk_size: int | None, max_tile_elements: int) -> tuple[int, int]:
    """(L, G): tokens per chunk and chunks per tile.

    A tile holds L * G tokens of state (``state_elements`` = b * d * N each) within
    ``max_tile_elements``; with no ``chunk_size``, L is about the square root of the tile's tokens,
    which balances the L per-step passes against the G per-chunk carries.
    """
    tokens = max(1, min(T, max_tile_elements // max(1, state_elements)))
    if chunk_size is None:
        L = max(1, math.isqrt(tokens))
    else:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        L = chunk_size
    L = min(L, T)
    G = max(1, tokens // L)
    return L, min(G, -(-T // L))


def _to_steps(x: torch.Tensor, L: int, K: int) -> torch.Tensor:
    """(b, c, T) -> (L, K, b, c): step l of chunk k is token k * L + l; zero-padded to K * L."""
    b, c, T = x.shape
    x = F.pad(x, (0, K * L - T))
    return x.view(b, c, K, L).permute(3, 2, 0, 1).contiguous()


def _from_steps(x: torch.Tensor, T: int) -> torch.Tensor:
    """(L, K, b, c) -> (b, c, T) contiguous, dropping the padding."""
    L, K, b, c = x.shape
    return x.permute(2, 3, 1, 0).reshape(b, c, K * L)[..., :T].contiguous()


class _ChunkedScan(torch.autograd.Function):
    """y = C . h for h_t = exp(dt_t A) h_{t-1} + dt_t u_t B_t; hand-written backward.

    Layouts inside: per-token inputs as (L, K, b, c) "steps" (``_to_steps``), states as
    (chunks, b, N, d) so that the wide d is innermost. Padding tokens have dt = 0 (decay 1) and
    zero input, so they carry the state unchanged and receive zero gradient.
    """

    @staticmethod
    def forward(ctx, u, dt, A, B, C, L: int, G: int):
        b, d, T = u.shape
        N = A.shape[1]
        K = -(-T // L)
        dt_s, u_s, B_s, C_s = (_to_steps(x, L, K) for x in (dt, u, B, C))  # (L, K, b, d|N)
        At = A.t().contiguous()  # (N, d)
        dtu_s = dt_s * u_s
        y_s = u.new_empty(L, K, b, d)
        h_start = u.new_empty(K, b, N, d)  # state before each chunk
        decay = u.new_empty(K, b, N, d)  # product of a chunk's decays
        a_buf = u.new_empty(L, min(G, K), b, N, d)
        carry = u.new_zeros(b, N, d)
        for k0 in range(0, K, G):
            k1 = min(K, k0 + G)
            a = a_buf[:, : k1 - k0]
            # 1. local scan of each chunk from a zero state; keep the decays and their product
            local = None
            for l in range(L):
                torch.mul(dt_s[l, k0:k1, :, None, :], At, out=a[l]).exp_()
                x = B_s[l, k0:k1, :, :, None] * dtu_s[l, k0:k1, :, None, :]
                if local is None:
                    local = x
                    decay[k0:k1].copy_(a[l])
                else:
                    local = x.addcmul_(a[l], local)
                    decay[k0:k1].mul_(a[l])
            # 2. carry the state across the tile's chunks
            for j in range(k1 - k0):
                h_start[k0 + j].copy_(carry)
                carry = torch.addcmul(local[j], decay[k0 + j], carry)
            # 3. the exact scan of each chunk from its true start state
            h = h_start[k0:k1]
            for l in range(L):
                x = B_s[l, k0:k1, :, :, None] * dtu_s[l, k0:k1, :, None, :]
                h = x.addcmul_(a[l], h)
                y_s[l, k0:k1] = torch.matmul(C_s[l, k0:k1, :, None, :], h).squeeze(-2)
        ctx.save_for_backward(dt_s, u_s, B_s, C_s, At, h_start, decay)
        ctx.shape = (b, d, T, N, L, G)
        return _from_steps(y_s, T)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gy):
        dt_s, u_s, B_s, C_s, At, h_start, decay = ctx.saved_tensors
        b, d, T, N, L, G = ctx.shape
        K = dt_s.shape[1]
        gy_s = _to_steps(gy.to(dt_s.dtype), L, K)  # (L, K, b, d)
        dtu_s = dt_s * u_s
        g_dtu = torch.empty_like(dt_s)  # dL/d(dt u)
        g_dt_decay = torch.empty_like(dt_s)  # dL/d dt through the decays
        g_B = torch.empty_like(B_s)
        g_C = torch.empty_like(C_s)
        g_At = torch.zeros_like(At)
        a_buf = dt_s.new_empty(L, min(G, K), b, N, d)
        h_buf = torch.empty_like(a_buf)
        carry = dt_s.new_zeros(b, N, d)  # dL/d(state at the end of the tile) from later tiles
        for k0 in reversed(range(0, K, G)):
            k1 = min(K, k0 + G)
            a, hs = a_buf[:, : k1 - k0], h_buf[:, : k1 - k0]
            # 1. reverse local scan: decays again, and each chunk's gradient into its start state
            into_start = None
            for l in reversed(range(L)):
                torch.mul(dt_s[l, k0:k1, :, None, :], At, out=a[l]).exp_()
                outer = C_s[l, k0:k1, :, :, None] * gy_s[l, k0:k1, :, None, :]
                if into_start is not None:
                    outer.add_(into_start)
                into_start = outer.mul_(a[l])
            # 2. carry gradients backwards across chunks: from_later[j] = dL/d(state at chunk j's end)
            from_later = torch.empty_like(into_start)
            for j in reversed(range(k1 - k0)):
                from_later[j].copy_(carry)
                carry = torch.addcmul(into_start[j], decay[k0 + j], carry)
            # 3. states of the tile again, then gradients step by step backwards
            h = h_start[k0:k1]
            for l in range(L):
                torch.mul(B_s[l, k0:k1, :, :, None], dtu_s[l, k0:k1, :, None, :], out=hs[l]).addcmul_(a[l], h)
                h = hs[l]
            g_C[:, k0:k1] = torch.matmul(hs, gy_s[:, k0:k1, :, :, None]).squeeze(-1)
            g = from_later
            for l in reversed(range(L)):
                g = g.addcmul_(C_s[l, k0:k1, :, :, None], gy_s[l, k0:k1, :, None, :])  # dL/dh_l
                g_B[l, k0:k1] = torch.matmul(g, dtu_s[l, k0:k1, :, :, None]).squeeze(-1)
                g_dtu[l, k0:k1] = torch.matmul(B_s[l, k0:k1, :, None, :], g).squeeze(-2)
                g = a[l].mul_(g)  # dL/dh_{l-1} through h_l
                h_before = hs[l - 1] if l > 0 else h_start[k0:k1]
                g_w = torch.mul(g, h_before, out=hs[l])  # dL/d(dt_l A), elementwise
                g_dt_decay[l, k0:k1] = (g_w * At).sum(-2)
                g_At += (g_w * dt_s[l, k0:k1, :, None, :]).sum((0, 1))
            # g now holds dL/d(state before the tile) from inside it; carry already has it too
        g_dt = g_dt_decay.addcmul_(g_dtu, u_s)
        g_u = g_dtu.mul_(dt_s)
        return (
            _from_steps(g_u, T),
            _from_steps(g_dt, T),
            g_At.t(),
            _from_steps(g_B, T),
            _from_steps(g_C, T),
            None,
            None,
        )

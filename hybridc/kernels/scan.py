"""Mamba's selective scan with a fast, exact CPU backend.

Shapes: b batch, d channels (``d_inner``), T tokens, N state size.

``selective_scan`` computes what transformers' ``mamba_selective_scan`` computes (its CPU path,
modeling_mamba.py in transformers 5.23)::

    dt    = softplus(delta + delta_bias)                  (each step only if asked)
    a_t   = exp(dt_t * A)                                 (b, d, N) per token
    h_t   = a_t * h_{t-1} + dt_t * B_t * u_t,  h_{-1} = 0  (b, d, N)  (or a given initial state)
    y_t   = sum_n C_t[n] h_t[:, :, n]                     (b, d)
    y     = (y + D * u) * silu(z)                         (each term only if given)

Backends:

- ``"reference"``: a token loop as transformers writes it (same dtypes, same order of operations),
  but over ``unbind`` views, so autograd's backward stays linear in T. For tests.
- ``"chunked"``: pure PyTorch, a ``torch.autograd.Function`` with a hand-written backward. Tokens are
  cut into chunks of L; a two-level scan runs the recurrence over the L steps of many chunks at
  once (one batched op per step on (b, chunks, N, d) tensors), then carries the state across chunks
  with a short sequential pass. Nothing is exponentiated but ``dt_t * A``, as in the reference
  (computed as ``exp2(dt_t * A log2(e))``, equal to rounding and twice as fast): a chunk's total
  decay is the running product of its steps' factors; no cumulative sums are subtracted, nothing
  is clamped, and extreme decays (factors underflowing to 0) behave as in the reference. Work and
  backward are linear in T; memory is the inputs plus one (b, d, N) state per chunk (saved for
  backward) plus at most two tile buffers of ``max_tile_elements`` elements (chunks are processed
  in tiles).
- ``"fused"``: the same recurrence in one C pass per direction (``hybridc.kernels.fused_scan``, built with
  the system C compiler on first use), the bias, softplus, D skip and silu gate included: 6-8x faster
  than ``"chunked"`` at Mamba-130M's width, and its memory is the inputs plus one state per 16 tokens.
  CPU tensors only.
- ``"cuda"``: mamba-ssm's fused kernel (``selective_scan_fn``); needs ``mamba_ssm`` and CUDA tensors.
- ``"auto"``: ``"cuda"`` when mamba-ssm imports and the input is on a CUDA device; else ``"fused"``
  when the kernels build here (``kernels.available()``), else ``"chunked"``.

Dtypes: the reference keeps the state in float32 (or wider), casts it to the input dtype before the
contraction with C, then adds ``D * u`` and gates with the dtypes it is given. The chunked backend
keeps everything in float32 (float64 for float64 input) up to the contraction, casts the scan output
to the reference's dtype, then applies D and z with the same expressions; the fused one computes the
D skip and the gate in float32 too and casts its output once, to the dtype those expressions give. The
output dtype always matches; in float32 the values match to rounding; in half precision they round once
instead of at every token. (In float64 the reference casts B and u to float32; chunked and fused do not.)

Layouts: the chunked backend is fastest with token-major inputs, i.e. (b, d, T) views of
(b, T, d) tensors (what the Mamba mixer produces); (b, d, T)-contiguous inputs cost a transposing
copy each. Outputs and gradients come back token-major.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from . import fused_scan, library as kernels
from .scan_inputs import compute_dtype, empty_scan

BACKENDS = ("auto", "fused", "chunked", "reference", "cuda")
DEFAULT_MAX_TILE_ELEMENTS = 1 << 20  # 4 MiB per float32 tile buffer: cache-sized (best on 2 cores at widths 256-1536)
_LOG2E = 1.4426950408889634  # exp(x) = exp2(x * log2(e)); exp2 is about twice as fast on CPU


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
    return_last_state: bool = False,
    initial_state: torch.Tensor | None = None,  # (b, d, N)
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:  # (b, d, T) [, (b, d, N)]
    """Mamba's selective scan (see the module doc for the math, backends and dtypes).

    ``chunk_size`` (tokens per chunk) and ``max_tile_elements`` (size of the working buffers) only
    tune the chunked backend (the fused one ignores them); by default the chunk is about the square root of the tokens per tile.
    ``return_last_state``: also return the state after the last token, h_{T-1} (b, d, N) in the
    scan's compute dtype (float32 or wider), as a cached prefill needs it; it carries no gradient.
    ``initial_state``: h_{-1} instead of zeros (several tokens after a generation cache's state); the
    fused, chunked and reference backends take it (with its gradient), mamba-ssm's kernel does not.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown selective-scan backend {backend!r}; expected one of {BACKENDS}")
    _check_shapes(u, delta, A, B, C, D, z, delta_bias)
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    if initial_state is not None and tuple(initial_state.shape) != (u.shape[0], u.shape[1], A.shape[1]):
        raise ValueError(f"initial_state must have shape {(u.shape[0], u.shape[1], A.shape[1])}, "
                         f"got {tuple(initial_state.shape)}")
    backend = resolve_backend(backend, u)
    if backend == "cuda":
        if initial_state is not None:
            raise ValueError("selective-scan backend 'cuda' (mamba-ssm) takes no initial_state")
        return _scan_cuda(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)

    input_dtype = u.dtype
    if backend == "fused":  # the time step's and the output's element-wise steps run inside the kernel
        if u.is_cuda:
            raise RuntimeError("selective-scan backend 'fused' runs on the CPU; this input is on CUDA")
        y, last = fused_scan.fused_scan(u, delta, A, B, C, initial_state, D=D, z=z, delta_bias=delta_bias,
                                        delta_softplus=delta_softplus)
        out_dtype = torch.promote_types(input_dtype, C.dtype)  # the dtype the steps below would give
        for x in (D, z):
            out_dtype = out_dtype if x is None else torch.promote_types(out_dtype, x.dtype)
        y = y.to(out_dtype)
        return (y, last) if return_last_state else y
    dt = delta
    if delta_bias is not None:
        dt = dt + delta_bias.to(dt.dtype)[..., None]
    if delta_softplus:
        dt = F.softplus(dt)
    if backend == "reference":
        y, last = _scan_reference(u, dt, A, B, C, initial_state)
    else:
        y, last = chunked_scan(u, dt, A, B, C, chunk_size=chunk_size, max_tile_elements=max_tile_elements,
                               return_last_state=True, initial_state=initial_state)
        y = y.to(torch.promote_types(input_dtype, C.dtype))
    if D is not None:
        y = y + u * D[None, :, None]
    if z is not None:
        y = y * F.silu(z)
    return (y, last) if return_last_state else y


def resolve_backend(backend: str, u: torch.Tensor) -> str:
    """The backend that runs: "auto" is "cuda" when mamba-ssm imports and ``u`` is on CUDA, else
    "fused" on the CPU when its kernel builds here, else "chunked"."""
    if backend == "auto":
        if u.is_cuda:
            return "cuda" if _mamba_ssm_scan() is not None else "chunked"
        return "fused" if kernels.available() else "chunked"
    return backend


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
    initial_state: torch.Tensor | None = None,  # (b, d, N)
) -> tuple[torch.Tensor, torch.Tensor]:  # (b, d, T) u's dtype, last state (b, d, N)
    """transformers' recurrent loop, expression for expression, over ``unbind`` views of time
    (from ``initial_state`` when given, as float32 or wider)."""
    b, d, T = u.shape
    input_dtype = u.dtype
    B = B.transpose(1, 2)  # (b, T, N)
    C = C.transpose(1, 2)
    discrete_A = torch.exp(A[None, :, None, :] * dt[:, :, :, None])  # (b, d, T, N)
    deltaB_u = dt[:, :, :, None] * B[:, None, :, :].float() * u[:, :, :, None].float()
    state = torch.zeros(b, d, A.shape[-1], dtype=input_dtype, device=u.device)
    if initial_state is not None:
        state = initial_state.to(torch.promote_types(torch.float32, initial_state.dtype))
    outputs = []
    for a_t, x_t, c_t in zip(discrete_A.unbind(2), deltaB_u.unbind(2), C.unbind(1)):
        state = a_t * state + x_t
        outputs.append(torch.matmul(state.to(input_dtype), c_t.unsqueeze(-1))[:, :, 0])
    if not outputs:
        return u.new_zeros(b, d, 0), state
    return torch.stack(outputs, dim=-1), state


# ---- cuda -----------------------------------------------------------------------------------------


def _mamba_ssm_scan():
    """mamba-ssm's ``selective_scan_fn``, or None when it does not import (imported lazily)."""
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except Exception:  # ImportError, or a CUDA extension that fails to load
        return None
    return selective_scan_fn


def _scan_cuda(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state=False):
    fn = _mamba_ssm_scan()
    if fn is None:
        raise RuntimeError("selective-scan backend 'cuda' needs mamba-ssm, which does not import here")
    if not u.is_cuda:
        raise RuntimeError("selective-scan backend 'cuda' needs CUDA tensors")
    return fn(u, delta, A, B, C, D=D, z=z, delta_bias=delta_bias, delta_softplus=delta_softplus,
              return_last_state=return_last_state)


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
    return_last_state: bool = False,
    initial_state: torch.Tensor | None = None,  # (b, d, N)
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:  # (b, d, T) [, (b, d, N)] in the compute dtype
    """The bare recurrence ``y_t = C_t . h_t`` (no bias, softplus, D or z), chunked backend;
    ``return_last_state``: also h_{T-1} (no gradient flows through it); ``initial_state``: h_{-1}.

    Computes in float32, or float64 when any input is float64.
    """
    b, d, T = u.shape
    N = A.shape[1]
    dtype = compute_dtype(u, dt, A, B, C)
    h0 = initial_state.to(dtype) if initial_state is not None else None
    if T == 0:
        y, last = empty_scan(u, dt, A, h0, dtype)
    else:
        L, G = plan_chunks(T, b * d * N, chunk_size, max_tile_elements)
        y, last = _ChunkedScan.apply(u.to(dtype), dt.to(dtype), A.to(dtype), B.to(dtype), C.to(dtype), L, G, h0)
    return (y, last) if return_last_state else y


def plan_chunks(T: int, state_elements: int, chunk_size: int | None, max_tile_elements: int) -> tuple[int, int]:
    """(L, G): tokens per chunk and chunks per tile.

    A tile holds L * G tokens of state (``state_elements`` = b * d * N each) within
    ``max_tile_elements``; with no ``chunk_size``, L is about the square root of the tile's tokens,
    which balances the L per-step passes against the G per-chunk carries.
    """
    tokens = max(1, min(T, max_tile_elements // max(1, state_elements)))
    if chunk_size is None:
        L = max(1, math.isqrt(tokens))
        # prefer a nearby chunk length that divides T (no padding, no copies)
        divisors = [c for c in range(max(1, L // 2), 2 * L + 1) if T % c == 0 and c <= tokens]
        if divisors:
            L = min(divisors, key=lambda c: (abs(c - L), c))
    else:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        L = chunk_size
    L = min(L, T)
    K = -(-T // L)
    G = min(max(1, tokens // L), K)
    tiles = -(-K // G)
    return L, -(-K // tiles)  # the same number of tiles, as even as possible


def _chunked_view(x: torch.Tensor, L: int, K: int) -> torch.Tensor:
    """(b, c, T) -> (b, K, L, c): [:, k, l] is token k * L + l; zero-padded to K * L tokens.

    A view when ``x`` is token-major in memory (a transposed view of a (b, T, c) tensor, as the
    Mamba mixer makes them) and T = K * L; otherwise one copy (a slow transposing one for a
    (b, c, T)-contiguous ``x``).
    """
    b, c, T = x.shape
    x = x.transpose(1, 2)  # (b, T, c)
    if K * L != T:
        x = F.pad(x, (0, 0, 0, K * L - T))
    return x.reshape(b, K, L, c)


def _unchunk(x: torch.Tensor, T: int) -> torch.Tensor:
    """(b, K, L, c) contiguous -> (b, c, T), dropping the padding: a transposed view."""
    b, K, L, c = x.shape
    return x.view(b, K * L, c)[:, :T].transpose(1, 2)


def _scan_forward(dt_c, u_c, B_c, C_c, A2, y, h_start, L: int, G: int):
    """The forward recurrence: fills ``y`` (b, K, L, d) and ``h_start`` (b, K, N, d; [:, 0] given);
    returns the last state (b, N, d)."""
    b, K, _, d = dt_c.shape
    N = A2.shape[0]
    dtu = dt_c * u_c
    width = min(G, K)
    a_buf = dt_c.new_empty(L, b, width, N, d)  # the tile's per-step decays
    h_buf = dt_c.new_empty(b, width, N, d)
    decay_buf = torch.empty_like(h_buf)  # product of each chunk's decays
    y_buf = dt_c.new_empty(L, b, width, 1, d)
    for k0 in range(0, K, G):
        k1 = min(K, k0 + G)
        n = k1 - k0
        a, h, decay, y_tile = a_buf[:, :, :n], h_buf[:, :n], decay_buf[:, :n], y_buf[:, :, :n]
        torch.mul(dt_c[:, k0:k1].permute(2, 0, 1, 3)[..., None, :], A2, out=a).exp2_()
        if n > 1:
            # 1. each chunk's scan from a zero state: its end state, and its total decay
            torch.mul(B_c[:, k0:k1, 0, :, None], dtu[:, k0:k1, 0, None, :], out=h)
            decay.copy_(a[0])
            for l in range(1, L):
                h.mul_(a[l]).addcmul_(B_c[:, k0:k1, l, :, None], dtu[:, k0:k1, l, None, :])
                decay.mul_(a[l])
            # 2. start states: end = local end + decay * start
            for j in range(k0 + 1, k1):
                torch.addcmul(h[:, j - 1 - k0], decay[:, j - 1 - k0], h_start[:, j - 1], out=h_start[:, j])
        # 3. each chunk's exact scan from its true start state
        h.copy_(h_start[:, k0:k1])
        for l in range(L):
            h.mul_(a[l]).addcmul_(B_c[:, k0:k1, l, :, None], dtu[:, k0:k1, l, None, :])
            torch.matmul(C_c[:, k0:k1, l, None, :], h, out=y_tile[l])
        y[:, k0:k1].copy_(y_tile[:, :, :, 0].permute(1, 2, 0, 3))
        if k1 < K:
            h_start[:, k1].copy_(h[:, n - 1])
    return h[:, n - 1]  # a view of a tile buffer: the caller copies it out


def _scan_backward(dt_c, u_c, B_c, C_c, At, gy_c, h_start, g_dtu, g_dt_decay, L: int, G: int):
    """The backward recurrence: fills ``g_dtu`` and ``g_dt_decay`` (b, K, L, d); returns (dL/dA^T (N, d),
    dL/dB and dL/dC (b, K, L, N), dL/d(state before the first token) (b, N, d))."""
    b, K, _, d = dt_c.shape
    N = At.shape[0]
    A2 = At * _LOG2E
    dtu = dt_c * u_c
    g_B = B_c.new_empty(b, K, L, N)
    g_C = torch.empty_like(g_B)
    width = min(G, K)
    a_buf = dt_c.new_empty(L, b, width, N, d)
    h_buf = torch.empty_like(a_buf)
    g_buf = dt_c.new_empty(b, width, N, d)
    w_buf = torch.empty_like(g_buf)
    p_buf = torch.empty_like(g_buf)  # products about to be summed (no allocation per step)
    g_dtu_buf = dt_c.new_empty(L, b, width, 1, d)
    g_B_buf = dt_c.new_empty(L, b, width, N, 1)  # sums over the channels as mat-vec products
    g_C_buf = torch.empty_like(g_B_buf)
    g_At = dt_c.new_zeros(b, width, N, d)  # dL/dA (transposed), summed over steps
    carry = dt_c.new_zeros(b, N, d)  # dL/d(state at the tile's end) from later tiles
    for k0 in reversed(range(0, K, G)):
        k1 = min(K, k0 + G)
        n = k1 - k0
        a, hs, g, scratch, prod = a_buf[:, :, :n], h_buf[:, :, :n], g_buf[:, :n], w_buf[:, :n], p_buf[:, :n]
        g_dtu_tile, g_B_tile, g_C_tile = g_dtu_buf[:, :, :n], g_B_buf[:, :, :n], g_C_buf[:, :, :n]
        torch.mul(dt_c[:, k0:k1].permute(2, 0, 1, 3)[..., None, :], A2, out=a).exp2_()
        g[:, n - 1].copy_(carry)
        if n > 1:
            # 1. each chunk's gradient into its start state from its own outputs (scratch), and
            #    its total decay (prod)
            torch.mul(C_c[:, k0:k1, L - 1, :, None], gy_c[:, k0:k1, L - 1, None, :], out=scratch)
            prod.copy_(a[L - 1])
            for l in reversed(range(L - 1)):
                scratch.mul_(a[l + 1]).addcmul_(C_c[:, k0:k1, l, :, None], gy_c[:, k0:k1, l, None, :])
                prod.mul_(a[l])
            scratch.mul_(a[0])
            # 2. g[:, j] = dL/d(state at chunk j's end) from later chunks
            for j in reversed(range(1, n)):
                torch.addcmul(scratch[:, j], prod[:, j], g[:, j], out=g[:, j - 1])
        # 3. the tile's states again (and dL/dC)
        h = h_start[:, k0:k1]
        for l in range(L):
            torch.mul(a[l], h, out=hs[l]).addcmul_(B_c[:, k0:k1, l, :, None], dtu[:, k0:k1, l, None, :])
            h = hs[l]
            torch.matmul(h, gy_c[:, k0:k1, l, :, None], out=g_C_tile[l])
        # 4. backwards through the steps
        for l in reversed(range(L)):
            g.addcmul_(C_c[:, k0:k1, l, :, None], gy_c[:, k0:k1, l, None, :])  # dL/dh_l
            torch.matmul(g, dtu[:, k0:k1, l, :, None], out=g_B_tile[l])
            torch.matmul(B_c[:, k0:k1, l, None, :], g, out=g_dtu_tile[l])
            g.mul_(a[l])  # dL/dh_{l-1} through h_l
            g_w = torch.mul(g, hs[l - 1] if l > 0 else h_start[:, k0:k1], out=scratch)  # dL/d(dt_l A)
            torch.sum(torch.mul(g_w, At, out=prod), dim=-2, out=g_dt_decay[:, k0:k1, l])
            g_At[:, :n].addcmul_(g_w, dt_c[:, k0:k1, l, None, :])
        g_dtu[:, k0:k1].copy_(g_dtu_tile[:, :, :, 0].permute(1, 2, 0, 3))
        g_B[:, k0:k1].copy_(g_B_tile[..., 0].permute(1, 2, 0, 3))
        g_C[:, k0:k1].copy_(g_C_tile[..., 0].permute(1, 2, 0, 3))
        carry.copy_(g[:, 0])  # dL/d(state before the tile)
    return g_At.sum((0, 1)), g_B, g_C, carry


class _ChunkedScan(torch.autograd.Function):
    """y = C . h for h_t = exp(dt_t A) h_{t-1} + dt_t u_t B_t; hand-written backward.

    Layouts inside: per-token tensors as (b, K, L, c) (``_chunked_view``), states as
    (b, chunks, N, d) so that the wide d is innermost. Padding tokens have dt = 0 (decay 1) and
    zero input, so they carry the state unchanged and receive zero gradient. The state before the
    first token is zero or ``h0`` (b, d, N); its gradient is what the backward carries out of the first tile.

    Chunks are processed in tiles of G, in order (backward: in reverse), carrying the state (the
    gradient) from tile to tile. Within a tile, every loop step is one batched op over its chunks:
    a first pass finds each chunk's end state from a zero start, a short pass over the chunks turns
    those into true start states, and a second pass runs the exact recurrence from them. A tile of
    one chunk (G = 1) skips the first pass: the scan is then plainly sequential.
    """

    @staticmethod
    def forward(ctx, u, dt, A, B, C, L: int, G: int, h0=None):
        b, d, T = u.shape
        N = A.shape[1]
        K = -(-T // L)
        dt_c, u_c, B_c, C_c = (_chunked_view(x, L, K) for x in (dt, u, B, C))  # (b, K, L, d|N)
        A2 = (A * _LOG2E).t().contiguous()  # (N, d): exp2(dt * A2) = exp(dt * A)
        y = u.new_empty(b, K, L, d)
        h_start = u.new_empty(b, K, N, d)  # state before each chunk
        if h0 is None:
            h_start[:, 0].zero_()
        else:
            h_start[:, 0].copy_(h0.transpose(1, 2))
        last = _scan_forward(dt_c, u_c, B_c, C_c, A2, y, h_start, L, G)
        ctx.save_for_backward(dt_c, u_c, B_c, C_c, A, h_start)
        ctx.shape = (T, L, G)
        last = last.transpose(1, 2).contiguous()  # (b, d, N): padding tokens carried the state unchanged
        ctx.mark_non_differentiable(last)
        return _unchunk(y, T), last

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gy, _g_last):
        dt_c, u_c, B_c, C_c, A, h_start = ctx.saved_tensors
        T, L, G = ctx.shape
        b, K, N, d = h_start.shape
        At = A.t().contiguous()  # (N, d)
        gy_c = _chunked_view(gy.to(dt_c.dtype), L, K)  # (b, K, L, d)
        g_dtu = dt_c.new_empty(b, K, L, d)  # dL/d(dt u)
        g_dt_decay = torch.empty_like(g_dtu)  # dL/d dt through the decays
        g_At, g_B, g_C, carry = _scan_backward(dt_c, u_c, B_c, C_c, At, gy_c, h_start, g_dtu, g_dt_decay, L, G)
        g_dt = g_dt_decay.addcmul_(g_dtu, u_c)
        g_u = g_dtu.mul_(dt_c)
        return (
            _unchunk(g_u, T),
            _unchunk(g_dt, T),
            g_At.t(),
            _unchunk(g_B, T),
            _unchunk(g_C, T),
            None,
            None,
            carry.transpose(1, 2) if ctx.needs_input_grad[7] else None,  # dL/dh0
        )

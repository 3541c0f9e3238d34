"""A transformers ``MambaBlock`` run from its own parameters, with our selective scan.

transformers' Mamba without mamba-ssm runs the selective scan as a Python loop over tokens whose
backward is quadratic in T. ``block_forward`` computes what ``MambaBlock.forward`` computes for a
full sequence (no generation cache) -- RMSNorm, the residual (float32 when ``residual_in_fp32``),
in_proj, the causal depthwise conv1d + activation (``hybridc.kernels.fused_conv``, token-major, when the scan
backend is "fused"), the padding-mask multiplications, x_proj,
dt_proj, the scan with D and the silu(gate), out_proj -- from the block's own ``Parameter``
objects, and hands the scan to ``hybridc.kernels.scan.selective_scan`` with a chosen backend.

Shapes: B batch, T tokens, d hidden size, I intermediate size (d_inner), N state size,
R time-step rank.

With a generation cache, full-sequence forwards run here: the prefill, and several tokens after a
filled cache (the scan starts from the cache's SSM state, the conv from its stored inputs); both leave
the cache as ``MambaMixer.forward`` would (the scan returns its last state). Single-token decode steps
stay with transformers' recurrent update. Not reproduced: the fused training path
``mamba_inner_fn`` (it exists only with mamba-ssm on CUDA, where the "cuda" scan backend runs
mamba-ssm's scan kernel instead), gradient checkpointing of the block, and accelerate offload hooks.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.cache_utils import Cache
from transformers.models.mamba.modeling_mamba import apply_mask_to_padding_states, causal_conv1d_fn

from ...kernels import fused_conv
from ...kernels.scan import resolve_backend, selective_scan

SCAN_BACKENDS = ("auto", "fused", "chunked", "reference", "cuda", "transformers")


def check_scan_backend(backend: str) -> str:
    """``backend`` if it names a Mamba segment scan backend, else ValueError."""
    if backend not in SCAN_BACKENDS:
        raise ValueError(f"unknown Mamba scan backend {backend!r}; expected one of {SCAN_BACKENDS}")
    return backend


def block_forward(
    block: nn.Module,  # transformers MambaBlock
    hidden_states: torch.Tensor,  # (B, T, d)
    attention_mask: torch.Tensor | None = None,  # (B, T) 1/0
    *,
    backend: str = "auto",
    cache: Cache | None = None,
) -> torch.Tensor:  # (B, T, d); float32 when residual_in_fp32
    """``MambaBlock.forward(hidden_states, attention_mask=..., cache_params=cache)`` for a full sequence.

    ``backend`` is a ``selective_scan`` backend, or "transformers" to call the block itself (whose scan
    restarts from zero: with ``cache``, for a prefill only). ``cache``: a generation cache, which this
    extends by the T tokens.
    """
    if check_scan_backend(backend) == "transformers":
        return block(hidden_states, attention_mask=attention_mask, cache_params=cache)
    residual = hidden_states
    hidden_states = block.norm(hidden_states.to(dtype=block.norm.weight.dtype))
    if block.residual_in_fp32:
        residual = residual.to(torch.float32)
    return residual + mixer_forward(block.mixer, hidden_states, attention_mask, backend=backend, cache=cache)


def mixer_forward(
    mixer: nn.Module,  # transformers MambaMixer
    hidden_states: torch.Tensor,  # (B, T, d)
    attention_mask: torch.Tensor | None = None,  # (B, T)
    *,
    backend: str = "auto",
    cache: Cache | None = None,
) -> torch.Tensor:  # (B, T, d)
    """``MambaMixer.forward`` for a full sequence, the scan by ``selective_scan``; with ``cache`` the conv
    and the scan continue from its state (if it has one for the mixer's layer), and it keeps the new
    conv inputs and the scan's last state.

    Same operations as transformers in the same order, with one deliberate layout change: the
    time steps are computed token-major, ``dt_proj.weight @ ts^T`` as ``(ts @ W^T)^T`` (the same
    products summed over the R-long rank), so that the scan gets token-major inputs and needs no
    transposing copies.
    """
    dtype = hidden_states.dtype
    hidden_states = apply_mask_to_padding_states(hidden_states, attention_mask)
    projected_states = mixer.in_proj(hidden_states).transpose(1, 2)  # (B, 2I, T)
    A = -torch.exp(mixer.A_log.float())  # (I, N)
    x, gate = projected_states.chunk(2, dim=1)  # (B, I, T) each
    length = x.shape[-1]
    initial_state = None
    if cache is not None:
        initial_state = cache.get_recurrent_state(mixer.layer_idx)  # None before the first forward
        # keeps the last conv_kernel_size inputs; returns the stored ones followed by x (at a prefill: x,
        # left-padded when shorter than the kernel)
        x = cache.update_conv_state(x, mixer.layer_idx, conv_kernel_size=mixer.conv_kernel_size)
    weight = mixer.conv1d.weight.squeeze(1)  # (I, K)
    if cache is None and resolve_backend(backend, x) == "fused" and fused_conv.supports(x, weight, mixer.activation):
        x = fused_conv.causal_conv1d_silu(x.transpose(1, 2), weight, mixer.conv1d.bias)  # (B, T, I), no copies
        x = apply_mask_to_padding_states(x, attention_mask)
    else:
        x = causal_conv1d_fn(x, weight, mixer.conv1d.bias, activation=mixer.activation)
        x = x[..., x.shape[-1] - length:]  # (B, I, T)
        x = apply_mask_to_padding_states(x.transpose(1, 2), attention_mask).contiguous()  # (B, T, I)
    time_step, B, C = torch.split(
        mixer.x_proj(x), [mixer.time_step_rank, mixer.ssm_state_size, mixer.ssm_state_size], dim=-1
    )
    if type(mixer.dt_proj) is nn.Linear:  # the bias goes into the scan (added in float32 there)
        time_step = nn.functional.linear(time_step, mixer.dt_proj.weight).transpose(1, 2)  # (B, I, T)
        delta_bias = mixer.dt_proj.bias.float() if mixer.dt_proj.bias is not None else None
    else:  # wrapped (a PEFT adapter on dt_proj): its own forward, so the adapter applies
        time_step, delta_bias = mixer.dt_proj(time_step).transpose(1, 2), None
    scanned = selective_scan(
        x.transpose(1, 2),
        time_step,
        A,
        B.transpose(1, 2),
        C.transpose(1, 2),
        D=mixer.D.float(),
        z=gate,
        delta_bias=delta_bias,
        delta_softplus=True,
        backend=backend,
        return_last_state=cache is not None,
        initial_state=initial_state,
    )  # (B, I, T) [, (B, I, N)]
    if cache is not None:
        y, last_state = scanned
        cache.update_recurrent_state(last_state, mixer.layer_idx)
    else:
        y = scanned
    return mixer.out_proj(y.transpose(1, 2).to(dtype))

"""Mamba's single-token decoding step in one C call per layer (``mamba_kernels.c``: ``step_fwd``).

transformers' ``MambaMixer`` decodes a token with about thirty small PyTorch operations per layer (the conv
state's roll, a conv1d, x_proj, dt_proj, softplus, the state update's exp and products, the gate): at batch 1
their dispatch costs more than reading the layer's weights. ``mamba_block_step`` runs what
``MambaBlock.forward`` computes for one token with a cache -- RMSNorm, the residual (float32 when
``residual_in_fp32``), in_proj, then in one pass the conv state's shift + conv + SiLU, x_proj, dt_proj + bias +
softplus, the SSM state update, C, D and the SiLU gate, then out_proj -- updating the cache's conv and SSM
states in place, as transformers' own update does (its ``causal_conv1d_update`` and
``mamba_selective_state_update``). The same operations in the same order up to the order of the sums: the
outputs agree with transformers' within float32 rounding.

The step is the PyTorch custom operator ``hybridc::mamba_step`` (its fake implementation gives shapes, so
``torch.compile`` traces a decode step that calls it; in eager mode its implementation is called directly); it
has no backward: decoding runs without gradients (``supports`` says False when a parameter would need one).

Shapes: B batch, d hidden size, I intermediate size, N state size, R time-step rank, K conv kernel, S the conv
state's length (S >= K).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn
from transformers.models.mamba.modeling_mamba import apply_mask_to_padding_states

from . import library as kernels
from .library import ptr

_DTYPES = (torch.float32, torch.float64)


def _step(xz: torch.Tensor, mask: Optional[torch.Tensor], conv_state: torch.Tensor, ssm_state: torch.Tensor,
          conv_weight: torch.Tensor, conv_bias: Optional[torch.Tensor], x_proj: torch.Tensor, dt_proj: torch.Tensor,
          dt_bias: Optional[torch.Tensor], A_log: torch.Tensor, D: Optional[torch.Tensor]) -> torch.Tensor:
    """xz (B, 2I) in_proj's output (x, then the gate z); mask (B,) or None; conv_state (B, I, S) and ssm_state
    (B, I, N), contiguous, updated in place; conv_weight (I, K); x_proj (R + 2N, I); dt_proj (I, R); A_log (I, N)
    (A = -exp(A_log)); conv_bias, dt_bias, D (I,) or None; all contiguous, of xz's dtype -> y (B, I), the gated
    scan output before out_proj."""
    b, I, S = conv_state.shape
    N, K, R = ssm_state.shape[2], conv_weight.shape[1], dt_proj.shape[1]
    if xz.stride(1) != 1:
        xz = xz.contiguous()
    y = xz.new_empty(b, I)
    kernels.call("step_fwd", xz.dtype, b, I, N, R, K, S, xz.stride(0), ptr(xz), ptr(mask), ptr(conv_state),
                 ptr(ssm_state), ptr(conv_weight), ptr(conv_bias), ptr(x_proj), ptr(dt_proj), ptr(dt_bias),
                 ptr(A_log), ptr(D), ptr(y))
    return y


# The operator torch.compile and torch.export see (eager decoding calls ``_step`` itself: the dispatcher's
# round trip costs as much as the kernel at batch 1)
mamba_step = torch.library.custom_op("hybridc::mamba_step", _step, mutates_args=("conv_state", "ssm_state"))


@mamba_step.register_fake
def _(xz, mask, conv_state, ssm_state, conv_weight, conv_bias, x_proj, dt_proj, dt_bias, A_log, D):
    return xz.new_empty(conv_state.shape[0], conv_state.shape[1])


def _states(cache, layer_idx: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The (conv, SSM) state tensors of ``layer_idx`` in ``cache``, when it keeps them as one tensor each."""
    layer = cache.layers[layer_idx]
    conv, ssm = getattr(layer, "conv_states", None), getattr(layer, "recurrent_states", None)
    if not isinstance(conv, dict) or not isinstance(ssm, dict):
        return None
    conv, ssm = conv.get(0), ssm.get(0)
    return (conv, ssm) if isinstance(conv, torch.Tensor) and isinstance(ssm, torch.Tensor) else None


def supports(block: nn.Module, h: torch.Tensor, cache) -> bool:
    """Whether ``mamba_block_step`` runs this step: the kernels built, one token on the CPU in float32 or float64
    (the states and weights too, contiguous), a SiLU conv of at most 16 taps, x_proj and dt_proj plain
    ``nn.Linear`` (a PEFT adapter on them runs transformers' update, which applies it), no gradient needed, a
    cache layer that is not recording its past (transformers' own path then keeps every conv input). Called at
    every step of every layer: cheap checks first."""
    if h.shape[1] != 1 or h.dtype not in _DTYPES or h.is_cuda:
        return False
    mixer = block._modules["mixer"]
    modules = mixer._modules
    x_proj, dt_proj, conv1d = modules["x_proj"], modules["dt_proj"], modules["conv1d"]
    if type(x_proj) is not nn.Linear or type(dt_proj) is not nn.Linear or mixer.activation not in ("silu", "swish"):
        return False
    if cache.is_recording_past(mixer.layer_idx):
        return False
    states = _states(cache, mixer.layer_idx)
    if states is None:
        return False
    weight = conv1d.weight
    tensors = (*states, weight, x_proj.weight, dt_proj.weight, mixer.A_log, mixer.D, conv1d.bias, dt_proj.bias)
    dtype = weight.dtype
    if dtype not in _DTYPES or any(t is not None and (t.dtype != dtype or not t.is_contiguous()) for t in tensors):
        return False
    if states[0].is_cuda or states[0].shape[-1] < weight.shape[-1] or weight.shape[-1] > kernels.conv_max_kernel():
        return False
    if torch.is_grad_enabled() and any(p.requires_grad for p in mixer.parameters()):
        return False
    return kernels.available()


def mamba_block_step(
    block: nn.Module,  # transformers MambaBlock
    h: torch.Tensor,  # (B, 1, d)
    cache,  # the component's cache, holding this layer's conv and SSM states (``supports`` said so)
    mask: torch.Tensor | None = None,  # (B, 1) 1/0
) -> torch.Tensor:  # (B, 1, d); float32 when residual_in_fp32
    """``block(h, cache_params=cache, attention_mask=mask)`` for one token (see the module doc)."""
    mixer = block.mixer
    residual = h
    x = block.norm(h.to(dtype=block.norm.weight.dtype))
    if block.residual_in_fp32:
        residual = residual.to(torch.float32)
    x = apply_mask_to_padding_states(x, mask)
    xz = mixer.in_proj(x)  # (B, 1, 2I)
    dtype = xz.dtype
    conv, ssm = _states(cache, mixer.layer_idx)
    row_mask = None if mask is None else mask[:, -1].to(dtype).contiguous()
    step = mamba_step if torch.compiler.is_compiling() else _step
    y = step(xz[:, 0], row_mask, conv, ssm, mixer.conv1d.weight.squeeze(1), mixer.conv1d.bias if mixer.use_conv_bias
             else None, mixer.x_proj.weight, mixer.dt_proj.weight, mixer.dt_proj.bias, mixer.A_log, mixer.D)
    return residual + mixer.out_proj(y.unsqueeze(1))

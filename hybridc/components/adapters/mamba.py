"""Mamba adapter: ``backbone.embeddings/layers/norm_f`` and ``lm_head`` (tied by default).

Segments run each block through ``mamba_fast.block_forward`` with a selectable scan backend
(``scan_backend``): "auto" (default: mamba-ssm's kernel on CUDA when it imports, else our fused CPU
scan when it builds, else our chunked one), "fused", "chunked", "reference", "cuda", or "transformers" (call the block itself: transformers'
own path, whose CPU scan is a token loop with a backward quadratic in T).

With a cache (a ``StepContext`` whose ``cache`` is set), a forward of several tokens runs the segment's
scan backend from the cache's state and leaves its conv and SSM states in the cache (the scan returns
its last state); one token runs hybridc's single-token step in one C call per layer
(``hybridc.kernels.mamba_step``, where the fused backend runs: "auto" on the CPU, "fused") or transformers' own
path, ``block(h, cache_params=cache, ...)``, its recurrent update (the other backends; "transformers" is the
eager reference). Where the scan cannot start from a state (transformers' own full-sequence scan, or
mamba-ssm's kernel), several tokens after a filled cache run one at a time.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn
from transformers.cache_utils import Cache, LinearAttentionCacheLayerMixin

from ...kernels import mamba_step as decode_kernels
from ...kernels.scan import resolve_backend
from .base import ComponentAdapter, Segment, StepContext, layer_output
from .mamba_fast import block_forward, check_scan_backend
from .rollback import journal, journaled_cache


class MambaSegment(Segment):
    """Layers [start, stop) of a ``MambaForCausalLM``; ``norm_f`` when stop == L.

    No positions or causal mask. A (B, T) padding mask is handed to every block unchanged, as
    ``MambaModel.forward`` does: the mixer multiplies its input and its conv output by it (padding
    positions contribute nothing to the scan state).

    With a context holding a cache: ``cached_block_forward`` (our scan from the cached state for several
    tokens, transformers' recurrent update for one; see the module doc) and the context's mask, the
    last T columns of the padding mask.

    Gradient checkpointing (``HybridModel.gradient_checkpointing_enable()`` sets it on the blocks): each block
    runs under transformers' checkpoint function, the fast path included, so its activations are recomputed
    in the backward pass.

    ``scan_backend`` (an attribute, may be changed later) picks how blocks run: see the module doc.
    """

    def __init__(self, model: nn.Module, start: int, stop: int, scan_backend: str = "auto"):
        super().__init__(start, stop)
        body = model.backbone
        self.layers = nn.ModuleList(body.layers[start:stop])
        self.norm_f = body.norm_f if stop == len(body.layers) else None
        self.scan_backend = check_scan_backend(scan_backend)
        self.step_kernel = True  # one-token decode steps in one C call per layer where the fused backend runs

    def forward(
        self,
        h: torch.Tensor,  # (B, T, d)
        attention_mask: torch.Tensor | None = None,  # (B, T)
        position_ids: torch.Tensor | None = None,  # ignored
        context: StepContext | None = None,
    ) -> torch.Tensor:  # (B, T, d), float32 when residual_in_fp32
        backend = check_scan_backend(self.scan_backend)
        if context is not None and context.cache is not None:
            for layer in self.layers:
                h = cached_block_forward(layer, h, context.cache, context.mask, backend=backend,
                                         step_kernel=self.step_kernel)
        else:
            mask = attention_mask if context is None else context.mask
            for layer in self.layers:
                if layer.gradient_checkpointing and layer.training:  # (transformers' switch, set on its blocks)
                    h = layer._gradient_checkpointing_func(partial(block_forward, layer, backend=backend), h, mask)
                else:
                    h = layer_output(block_forward(layer, h, mask, backend=backend))
        if self.norm_f is not None:
            h = self.norm_f(h)
        return h

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, scan_backend={self.scan_backend!r}"

    def shard_units(self) -> list[nn.Module]:
        """The fast path reads each block's parameters without calling the block: unless the blocks
        run as transformers runs them, the whole segment is one FSDP unit."""
        return list(self.layers) if self.scan_backend == "transformers" else [self]


def cached_block_forward(
    block: nn.Module,  # transformers MambaBlock
    h: torch.Tensor,  # (B, T, d)
    cache: Cache,
    mask: torch.Tensor | None,  # (B, T) 1/0
    *,
    backend: str = "transformers",
    step_kernel: bool = True,
) -> torch.Tensor:  # (B, T, d)
    """``block(h, cache_params=cache, attention_mask=mask)``, right also for T > 1 after a filled cache. A cache
    layer that keeps a journal (assisted generation: ``rollback``) records the forward first.

    One token after a filled cache runs ``decode_kernels.mamba_block_step`` when ``step_kernel`` and the backend
    resolves to the fused one (and the kernel takes the block: ``decode_kernels.supports``), else the block's own
    recurrent update. Several tokens run ``block_forward`` with ``backend``, from the cache's state. ``MambaMixer`` (the
    "transformers" backend) runs T > 1 tokens through its full-sequence scan from a zero state even
    when the cache holds one (it keeps the conv state, drops the SSM state), and mamba-ssm's kernel
    takes no initial state: then, after a filled cache, the tokens are fed one by one.
    """
    journal(cache, block.layer_idx, h, mask,
            lambda x, m: cached_block_forward(block, x, cache, m, backend=backend, step_kernel=step_kernel))
    length = h.shape[1]
    started = cache.has_previous_state(block.layer_idx)
    if length == 1 and started:
        if step_kernel and backend != "transformers" and resolve_backend(backend, h) == "fused" \
                and decode_kernels.supports(block, h, cache):
            return decode_kernels.mamba_block_step(block, h, cache, mask)
        return layer_output(block(h, cache_params=cache, attention_mask=mask))
    if not started or not restarts_from_zero(backend, h):
        return layer_output(block_forward(block, h, mask, backend=backend, cache=cache))
    steps = [
        layer_output(
            block(h[:, t : t + 1], cache_params=cache, attention_mask=None if mask is None else mask[:, t : t + 1])
        )
        for t in range(length)
    ]
    return torch.cat(steps, dim=1)


def restarts_from_zero(backend: str, h: torch.Tensor) -> bool:
    """Whether ``backend``'s full-sequence scan can only start from a zero state (on ``h``'s device)."""
    return backend == "transformers" or resolve_backend(backend, h) == "cuda"


def recurrent_context(
    h: torch.Tensor,  # (B, T, ...)
    attention_mask: torch.Tensor | None,  # (B, past + T) or (B, T)
    cache: Cache | None,
    num_layers: int,
) -> StepContext:
    """A Mamba ``StepContext``: the cache (checked: one conv/SSM state layer per model layer) and
    the padding mask of this step's tokens, ``attention_mask[:, -T:]``."""
    length = h.shape[1]
    mask = attention_mask
    if cache is not None:
        layers = getattr(cache, "layers", [])
        if len(layers) < num_layers or not all(isinstance(x, LinearAttentionCacheLayerMixin) for x in layers):
            raise ValueError(
                "a Mamba component needs a cache of conv/SSM state layers, one per model layer: "
                "use the adapter's new_cache()"
            )
        if attention_mask is not None and attention_mask.ndim == 2:
            if attention_mask.shape[-1] < length:
                raise ValueError(f"attention_mask has {attention_mask.shape[-1]} columns, the input {length} tokens")
            mask = attention_mask[:, -length:]
    return StepContext(cache=cache, position_ids=None, mask=mask, attention_mask=attention_mask)


class MambaAdapter(ComponentAdapter):
    """``scan_backend``: the default of the segments it makes (see the module doc)."""

    family_name = "mamba"

    def __init__(self, model: nn.Module, scan_backend: str = "auto"):
        super().__init__(model)
        self.scan_backend = check_scan_backend(scan_backend)

    def layers(self) -> nn.ModuleList:
        return self.model.backbone.layers

    def embedding(self) -> nn.Module:
        return self.model.backbone.embeddings

    def segment(self, start: int, stop: int, scan_backend: str | None = None) -> MambaSegment:
        """Layers [start, stop); ``scan_backend`` None means the adapter's."""
        self.check_range(start, stop)
        backend = self.scan_backend if scan_backend is None else scan_backend
        return MambaSegment(self.model, start, stop, scan_backend=backend)

    def lm_head(self) -> nn.Module:
        return self.model.lm_head

    def new_cache(self) -> Cache:
        """The family's ``DynamicCache`` whose conv/SSM state layers can forget tokens (``rollback``)."""
        return journaled_cache(self.config)

    def prepare(
        self,
        h: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,  # ignored
        cache: Cache | None = None,
    ) -> StepContext:
        """Mamba has no positions; the mask is the padding mask's last T columns (``MambaModel`` hands
        blocks the mask as given, and ``MambaForCausalLM.generate`` passes it whole at prefill, then
        none: decode tokens are never padding, so both give the same numbers)."""
        return recurrent_context(h, attention_mask, cache, self.num_layers)

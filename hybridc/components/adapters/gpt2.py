"""GPT-2 adapter: ``transformer.wte/wpe/drop/h/ln_f`` and ``lm_head`` (tied by default)."""

from __future__ import annotations

import torch
from torch import nn
from transformers.cache_utils import Cache

from .base import ComponentAdapter, Segment, StepContext, attention_context, check_length, layer_output


class GPT2Segment(Segment):
    """Layers [start, stop) of a ``GPT2LMHeadModel``.

    start == 0: ``h = drop(h + wpe(positions))`` first (embedding dropout ``embd_pdrop``, 0.1 by
    default, active in training mode); stop == L: ``ln_f`` last.

    With a context, each block gets ``past_key_values=cache`` and appends its keys/values at its
    own ``attn.layer_idx``. Cross-attention (``add_cross_attention``) is never used by a hybrid.
    """

    def __init__(self, model: nn.Module, start: int, stop: int):
        super().__init__(start, stop)
        body = model.transformer
        self.config = model.config
        self.layers = nn.ModuleList(body.h[start:stop])
        self.wpe = body.wpe if start == 0 else None
        self.drop = body.drop if start == 0 else None
        self.ln_f = body.ln_f if stop == len(body.h) else None

    def forward(
        self,
        h: torch.Tensor,  # (B, T, d)
        attention_mask: torch.Tensor | None = None,  # (B, T)
        position_ids: torch.Tensor | None = None,  # (B or 1, T)
        context: StepContext | None = None,
    ) -> torch.Tensor:  # (B, T, d)
        if context is None:
            context = attention_context(self.config, h, attention_mask, position_ids, None)
        position_ids = context.position_ids
        if self.wpe is not None:
            h = self.drop(h + self.wpe(position_ids))
        cache = {} if context.cache is None else {"past_key_values": context.cache, "use_cache": True}
        for layer in self.layers:
            h = layer_output(layer(h, attention_mask=context.mask, position_ids=position_ids, **cache))
        if self.ln_f is not None:
            h = self.ln_f(h)
        return h


class GPT2Adapter(ComponentAdapter):
    family_name = "gpt2"

    def layers(self) -> nn.ModuleList:
        return self.model.transformer.h

    def embedding(self) -> nn.Module:
        """``wte`` only: the positions are added by the segment that starts at layer 0."""
        return self.model.transformer.wte

    def segment(self, start: int, stop: int) -> GPT2Segment:
        self.check_range(start, stop)
        return GPT2Segment(self.model, start, stop)

    def lm_head(self) -> nn.Module:
        return self.model.lm_head

    def prepare(
        self,
        h: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: Cache | None = None,
    ) -> StepContext:
        """Default positions past ``n_positions`` are rejected (the learned table ends there)."""
        if cache is not None and position_ids is None:
            check_length(cache, h.shape[1], self.config.n_positions, "positions of GPT-2's position table")
        return super().prepare(h, attention_mask, position_ids, cache)

"""GPT-Neo adapter: ``transformer.wte/wpe/drop/h/ln_f`` and ``lm_head`` (tied by default)."""

from __future__ import annotations

import torch
from torch import nn
from transformers.cache_utils import Cache

from .base import ComponentAdapter, Segment, StepContext, attention_context, check_length, layer_output


class GPTNeoSegment(Segment):
    """Layers [start, stop) of a ``GPTNeoForCausalLM``.

    start == 0: ``h = drop(h + wpe(positions))`` first; stop == L: ``ln_f`` last. Local attention
    windows come from each layer's own ``bias`` buffer, so the shared causal mask is exact.

    With a context, each block gets ``layer_past=cache`` and appends its keys/values at its own
    ``layer_id``; ``bias`` is sliced by key length (past + T), as in the model's cached forward.
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
        if self.wpe is not None:
            h = self.drop(h + self.wpe(context.position_ids))
        cache = {} if context.cache is None else {"layer_past": context.cache, "use_cache": True}
        for layer in self.layers:
            h = layer_output(layer(h, attention_mask=context.mask, **cache))
        if self.ln_f is not None:
            h = self.ln_f(h)
        return h


class GPTNeoAdapter(ComponentAdapter):
    family_name = "gpt-neo"

    def layers(self) -> nn.ModuleList:
        return self.model.transformer.h

    def embedding(self) -> nn.Module:
        """``wte`` only: the positions are added by the segment that starts at layer 0."""
        return self.model.transformer.wte

    def segment(self, start: int, stop: int) -> GPTNeoSegment:
        self.check_range(start, stop)
        return GPTNeoSegment(self.model, start, stop)

    def lm_head(self) -> nn.Module:
        return self.model.lm_head

    def prepare(
        self,
        h: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: Cache | None = None,
    ) -> StepContext:
        """Keys are limited to ``max_position_embeddings`` (each layer's ``bias`` buffer) whatever the positions."""
        if cache is not None:
            check_length(cache, h.shape[1], self.config.max_position_embeddings, "keys GPT-Neo's attention holds")
        return super().prepare(h, attention_mask, position_ids, cache)

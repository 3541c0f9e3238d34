"""The sample family's adapter: embedding, layer ranges and head of a ``ShiftForCausalLM`` for a hybrid."""

from __future__ import annotations

import torch
from torch import nn
from transformers.cache_utils import Cache, DynamicCache

from hybridc.components.adapters.base import ComponentAdapter, Segment, StepContext


class ShiftSegment(Segment):
    """Layers [start, stop) of the model; its final norm when ``stop`` is its last layer."""

    def __init__(self, model: nn.Module, start: int, stop: int):
        super().__init__(start, stop)
        self.layers = nn.ModuleList(model.model.layers[start:stop])
        self.norm = model.model.norm if stop == len(model.model.layers) else None

    def forward(self, h: torch.Tensor, attention_mask: torch.Tensor | None = None,  # (B, T, d), (B, T)
                position_ids: torch.Tensor | None = None, context: StepContext | None = None) -> torch.Tensor:
        mask, cache = (context.mask, context.cache) if context is not None else (attention_mask, None)
        for layer in self.layers:
            h = layer(h, mask, cache)
        return self.norm(h) if self.norm is not None else h


class ShiftAdapter(ComponentAdapter):
    family_name = "sample-shift"

    def layers(self) -> nn.ModuleList:
        return self.model.model.layers

    def embedding(self) -> nn.Module:
        return self.model.model.embed_tokens

    def segment(self, start: int, stop: int) -> Segment:
        self.check_range(start, stop)
        return ShiftSegment(self.model, start, stop)

    def lm_head(self) -> nn.Module:
        return self.model.lm_head

    def new_cache(self) -> Cache:
        return DynamicCache(config=self.config)

    def prepare(self, h: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, cache: Cache | None = None) -> StepContext:
        """No positions; the padding mask of this step's T tokens (the last T columns)."""
        mask = attention_mask[:, -h.shape[1]:] if attention_mask is not None else None
        return StepContext(cache=cache, position_ids=None, mask=mask, attention_mask=attention_mask)

"""GPT-Neo adapter: ``transformer.wte/wpe/drop/h/ln_f`` and ``lm_head`` (tied by default)."""

from __future__ import annotations

import torch
from torch import nn

from .base import ComponentAdapter, Segment, causal_mask, default_position_ids, layer_output


class GPTNeoSegment(Segment):
    """Layers [start, stop) of a ``GPTNeoForCausalLM``.

    start == 0: ``h = drop(h + wpe(positions))`` first; stop == L: ``ln_f`` last. Local attention
    windows come from each layer's own ``bias`` buffer, so the shared causal mask is exact.
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
    ) -> torch.Tensor:  # (B, T, d)
        if position_ids is None:
            position_ids = default_position_ids(h)
        mask = causal_mask(self.config, h, attention_mask, position_ids)
        if self.wpe is not None:
            h = self.drop(h + self.wpe(position_ids))
        for layer in self.layers:
            h = layer_output(layer(h, attention_mask=mask))
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

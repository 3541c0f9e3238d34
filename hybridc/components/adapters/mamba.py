"""Mamba adapter: ``backbone.embeddings/layers/norm_f`` and ``lm_head`` (tied by default)."""

from __future__ import annotations

import torch
from torch import nn

from .base import ComponentAdapter, Segment, layer_output


class MambaSegment(Segment):
    """Layers [start, stop) of a ``MambaForCausalLM``; ``norm_f`` when stop == L.

    No positions or causal mask. A (B, T) padding mask is handed to every block unchanged, as
    ``MambaModel.forward`` does: the mixer multiplies its input and its conv output by it (padding
    positions contribute nothing to the scan state).
    """

    def __init__(self, model: nn.Module, start: int, stop: int):
        super().__init__(start, stop)
        body = model.backbone
        self.layers = nn.ModuleList(body.layers[start:stop])
        self.norm_f = body.norm_f if stop == len(body.layers) else None

    def forward(
        self,
        h: torch.Tensor,  # (B, T, d)
        attention_mask: torch.Tensor | None = None,  # (B, T)
        position_ids: torch.Tensor | None = None,  # ignored
    ) -> torch.Tensor:  # (B, T, d), float32 when residual_in_fp32
        for layer in self.layers:
            h = layer_output(layer(h, attention_mask=attention_mask))
        if self.norm_f is not None:
            h = self.norm_f(h)
        return h


class MambaAdapter(ComponentAdapter):
    family_name = "mamba"

    def layers(self) -> nn.ModuleList:
        return self.model.backbone.layers

    def embedding(self) -> nn.Module:
        return self.model.backbone.embeddings

    def segment(self, start: int, stop: int) -> MambaSegment:
        self.check_range(start, stop)
        return MambaSegment(self.model, start, stop)

    def lm_head(self) -> nn.Module:
        return self.model.lm_head

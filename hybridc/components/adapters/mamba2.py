"""Mamba-2 adapter: ``backbone.embeddings/layers/norm_f`` and ``lm_head`` (untied by default)."""

from __future__ import annotations

import torch
from torch import nn
from transformers.masking_utils import create_recurrent_attention_mask

from .base import ComponentAdapter, Segment, layer_output


class Mamba2Segment(Segment):
    """Layers [start, stop) of a ``Mamba2ForCausalLM``; ``norm_f`` when stop == L.

    No positions or causal mask. A padding mask goes through ``create_recurrent_attention_mask``
    as in ``Mamba2Model.forward`` (None when it has no zeros), then to every block, whose mixer
    multiplies its input and its conv output by it.
    """

    def __init__(self, model: nn.Module, start: int, stop: int):
        super().__init__(start, stop)
        body = model.backbone
        self.config = model.config
        self.layers = nn.ModuleList(body.layers[start:stop])
        self.norm_f = body.norm_f if stop == len(body.layers) else None

    def forward(
        self,
        h: torch.Tensor,  # (B, T, d)
        attention_mask: torch.Tensor | None = None,  # (B, T)
        position_ids: torch.Tensor | None = None,  # ignored
    ) -> torch.Tensor:  # (B, T, d), float32 when residual_in_fp32
        mask = create_recurrent_attention_mask(
            config=self.config, inputs_embeds=h, attention_mask=attention_mask, past_key_values=None
        )
        for layer in self.layers:
            h = layer_output(layer(h, attention_mask=mask))
        if self.norm_f is not None:
            h = self.norm_f(h)
        return h


class Mamba2Adapter(ComponentAdapter):
    family_name = "mamba2"

    def layers(self) -> nn.ModuleList:
        return self.model.backbone.layers

    def embedding(self) -> nn.Module:
        return self.model.backbone.embeddings

    def segment(self, start: int, stop: int) -> Mamba2Segment:
        self.check_range(start, stop)
        return Mamba2Segment(self.model, start, stop)

    def lm_head(self) -> nn.Module:
        return self.model.lm_head

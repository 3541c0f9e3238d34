"""Llama adapter: ``model.embed_tokens/layers/norm/rotary_emb`` and ``lm_head`` (untied by default)."""

from __future__ import annotations

import torch
from torch import nn

from .base import ComponentAdapter, Segment, causal_mask, default_position_ids, layer_output


class LlamaSegment(Segment):
    """Layers [start, stop) of a ``LlamaForCausalLM``.

    No embedding dropout or positions at start 0; rotary (cos, sin) and the causal mask are computed
    here for every segment; stop == L: ``norm`` last.
    """

    def __init__(self, model: nn.Module, start: int, stop: int):
        super().__init__(start, stop)
        body = model.model
        num_layers = model.config.num_hidden_layers
        self.config = model.config
        self.layers = nn.ModuleList(body.layers[:num_layers][start:stop])
        self.rotary_emb = body.rotary_emb
        self.norm = body.norm if stop == num_layers else None

    def forward(
        self,
        h: torch.Tensor,  # (B, T, d)
        attention_mask: torch.Tensor | None = None,  # (B, T)
        position_ids: torch.Tensor | None = None,  # (B or 1, T)
    ) -> torch.Tensor:  # (B, T, d)
        if position_ids is None:
            position_ids = default_position_ids(h)
        mask = causal_mask(self.config, h, attention_mask, position_ids)
        rotary = self.rotary_emb(h, position_ids=position_ids)  # (cos, sin), each (B or 1, T, head_dim)
        for layer in self.layers:
            h = layer_output(
                layer(h, attention_mask=mask, position_embeddings=rotary, position_ids=position_ids)
            )
        if self.norm is not None:
            h = self.norm(h)
        return h


class LlamaAdapter(ComponentAdapter):
    family_name = "llama"

    def layers(self) -> nn.ModuleList:
        return self.model.model.layers[: self.config.num_hidden_layers]

    def embedding(self) -> nn.Module:
        return self.model.model.embed_tokens

    def segment(self, start: int, stop: int) -> LlamaSegment:
        self.check_range(start, stop)
        return LlamaSegment(self.model, start, stop)

    def lm_head(self) -> nn.Module:
        return self.model.lm_head

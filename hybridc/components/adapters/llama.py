"""Llama adapter: ``model.embed_tokens/layers/norm/rotary_emb`` and ``lm_head`` (untied by default)."""

from __future__ import annotations

import torch
from torch import nn

from .base import ComponentAdapter, Segment, StepContext, attention_context, layer_output


class LlamaSegment(Segment):
    """Layers [start, stop) of a ``LlamaForCausalLM``.

    No embedding dropout or positions at start 0; rotary (cos, sin) and the causal mask are computed
    here for every segment (with a context: once, by ``prepare``); stop == L: ``norm`` last.

    With a context, each layer gets ``past_key_values=cache`` and appends its keys/values at its own
    ``self_attn.layer_idx``.
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
        context: StepContext | None = None,
    ) -> torch.Tensor:  # (B, T, d)
        if context is None:  # rotary: (cos, sin), each (B or 1, T, head_dim)
            context = attention_context(self.config, h, attention_mask, position_ids, None, self.rotary_emb)
        cache = {} if context.cache is None else {"past_key_values": context.cache, "use_cache": True}
        for layer in self.layers:
            h = layer_output(
                layer(
                    h,
                    attention_mask=context.mask,
                    position_embeddings=context.position_embeddings,
                    position_ids=context.position_ids,
                    **cache,
                )
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

    def rotary_embedding(self) -> nn.Module:
        return self.model.model.rotary_emb

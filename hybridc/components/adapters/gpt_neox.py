"""GPT-NeoX (Pythia) adapter: ``gpt_neox.embed_in/emb_dropout/layers/final_layer_norm/rotary_emb``, ``lm_head``."""

from __future__ import annotations

import torch
from torch import nn

from .base import ComponentAdapter, Segment, StepContext, attention_context, layer_output


class GPTNeoXSegment(Segment):
    """Layers [start, stop) of a ``GPTNeoXForCausalLM``.

    start == 0: ``emb_dropout`` first; rotary (cos, sin) and the causal mask are computed here for
    every segment (with a context: once, by ``prepare``); stop == L: ``final_layer_norm`` last.

    With a context, each layer gets ``layer_past=cache`` and appends its keys/values at its own
    ``attention.layer_idx``.
    """

    def __init__(self, model: nn.Module, start: int, stop: int):
        super().__init__(start, stop)
        body = model.gpt_neox
        self.config = model.config
        self.layers = nn.ModuleList(body.layers[start:stop])
        self.rotary_emb = body.rotary_emb
        self.emb_dropout = body.emb_dropout if start == 0 else None
        self.final_layer_norm = body.final_layer_norm if stop == len(body.layers) else None

    def forward(
        self,
        h: torch.Tensor,  # (B, T, d)
        attention_mask: torch.Tensor | None = None,  # (B, T)
        position_ids: torch.Tensor | None = None,  # (B or 1, T)
        context: StepContext | None = None,
    ) -> torch.Tensor:  # (B, T, d)
        if context is None:  # rotary: (cos, sin), each (B or 1, T, rot)
            context = attention_context(self.config, h, attention_mask, position_ids, None, self.rotary_emb)
        if self.emb_dropout is not None:
            h = self.emb_dropout(h)
        cache = {} if context.cache is None else {"layer_past": context.cache, "use_cache": True}
        for layer in self.layers:
            h = layer_output(
                layer(
                    h,
                    attention_mask=context.mask,
                    position_ids=context.position_ids,
                    position_embeddings=context.position_embeddings,
                    **cache,
                )
            )
        if self.final_layer_norm is not None:
            h = self.final_layer_norm(h)
        return h


class GPTNeoXAdapter(ComponentAdapter):
    family_name = "gpt-neox"

    def layers(self) -> nn.ModuleList:
        return self.model.gpt_neox.layers

    def embedding(self) -> nn.Module:
        return self.model.gpt_neox.embed_in

    def segment(self, start: int, stop: int) -> GPTNeoXSegment:
        self.check_range(start, stop)
        return GPTNeoXSegment(self.model, start, stop)

    def lm_head(self) -> nn.Module:
        return self.model.lm_head

    def rotary_embedding(self) -> nn.Module:
        return self.model.gpt_neox.rotary_emb

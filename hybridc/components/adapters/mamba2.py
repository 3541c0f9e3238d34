"""Mamba-2 adapter: ``backbone.embeddings/layers/norm_f`` and ``lm_head`` (untied by default)."""

from __future__ import annotations

from functools import partial

import torch
from torch import nn
from transformers.cache_utils import Cache
from transformers.masking_utils import create_recurrent_attention_mask

from .base import ComponentAdapter, Segment, StepContext, layer_output
from .mamba import recurrent_context
from .rollback import journal, journaled_cache


class Mamba2Segment(Segment):
    """Layers [start, stop) of a ``Mamba2ForCausalLM``; ``norm_f`` when stop == L.

    No positions or causal mask. A padding mask goes through ``create_recurrent_attention_mask``
    as in ``Mamba2Model.forward`` (None when it has no zeros), then to every block, whose mixer
    multiplies its input and its conv output by it.

    With a context: ``cache_params=cache`` to every block (conv + SSM states at its own
    ``layer_idx``; the chunked scan continues from the cached state, so T > 1 after a filled cache
    is right) and the context's mask (the last T columns; None for one token, as transformers does).
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
        context: StepContext | None = None,
    ) -> torch.Tensor:  # (B, T, d), float32 when residual_in_fp32
        if context is None:
            context = mamba2_context(self.config, h, attention_mask, None, len(self.layers))
        cache = {} if context.cache is None else {"cache_params": context.cache}
        for layer in self.layers:
            if context.cache is not None:  # (assisted generation: the layer's cache may keep a journal)
                journal(context.cache, layer.layer_idx, h, context.mask, partial(_replay, layer, context.cache))
            h = layer_output(layer(h, attention_mask=context.mask, **cache))
        if self.norm_f is not None:
            h = self.norm_f(h)
        return h


def _replay(layer: nn.Module, cache: Cache, h: torch.Tensor, mask: torch.Tensor | None) -> None:
    """Run a Mamba-2 block on journaled tokens with its cache (``rollback``); the output is not needed."""
    layer(h, attention_mask=mask, cache_params=cache)


def mamba2_context(
    config, h: torch.Tensor, attention_mask: torch.Tensor | None, cache: Cache | None, num_layers: int
) -> StepContext:
    """A Mamba-2 ``StepContext``: the cache (checked) and ``create_recurrent_attention_mask`` against
    it, as ``Mamba2Model.forward`` computes it."""
    context = recurrent_context(h, attention_mask, cache, num_layers)  # checks the cache and the mask width
    mask = create_recurrent_attention_mask(
        config=config, inputs_embeds=h, attention_mask=attention_mask, past_key_values=cache
    )
    return StepContext(cache=cache, position_ids=None, mask=mask, attention_mask=context.attention_mask)


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
        return mamba2_context(self.config, h, attention_mask, cache, self.num_layers)

"""The torch side of a family: cut a loaded transformers model into the parts a hybrid owns.

A hybrid never calls a component's own ``forward``. It takes three kinds of parts from the adapter:

- ``embedding()``: the token embedding, ids (B, T) -> (B, T, d_m);
- ``segment(start, stop)``: layers [start, stop) as a module (B, T, d_m) -> (B, T, d_m) that does
  exactly what the family's forward does around those layers: position embeddings and embedding
  dropout when ``start == 0``, causal masks and rotary embeddings per segment, the final norm when
  ``stop == num_layers``;
- ``lm_head()``: (B, T, d_m) -> (B, T, V_m), sharing the embedding weight when the model ties them.

Invariant (tested for every family): embedding -> segment(0, k) -> segment(k, L) -> lm_head equals the
model's own logits. Parts share parameters with the model (the segment registers the model's own
submodules, no copies); the hybrid registers only the parts it uses, so unused parts (an unmixed
head, say) cost nothing.

Cached (incremental) decoding. ``new_cache()`` is an empty transformers cache of the component (its
own ``DynamicCache(config=...)``: key/value layers, or conv + SSM state layers for Mamba/Mamba2).
Once per forward of the caller, *before* any segment of the component runs, ``prepare(h,
attention_mask, position_ids, cache)`` computes what the family's own model forward computes up front
-- past length, position ids, the causal mask against the cache, rotary (cos, sin), the recurrent
padding mask -- into a ``StepContext``; every segment of the component then runs with
``context=...`` and appends this step's keys/values (or updates its conv/SSM states) in the cache at
its own layer indices. ``prepare`` must come first because the component's segments share the cache:
once the first segment has run, layer 0's cache already holds this step's tokens.
Invariant (tests/components/test_cache.py): prefill + one token at a time through segments with a
cache gives the model's own full-sequence logits, and greedy decoding gives ``model.generate``'s tokens.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from transformers.cache_utils import Cache, CacheLayerMixin, DynamicCache
from transformers.masking_utils import create_causal_mask


@dataclass(frozen=True)
class StepContext:
    """One component's state for one forward of its segments, from ``ComponentAdapter.prepare``.

    Computed before any segment of the component runs, shared by all of them (frozen: segments only
    read it; the cache object itself is updated in place by the layers).
    """

    cache: Cache | None  # the component's own transformers cache, None: full sequence, no cache
    position_ids: torch.Tensor | None  # (B or 1, T) positions of this step's tokens; None for Mamba/Mamba2
    mask: Any  # what the family's layers take: 4D causal mask / None (sdpa, no padding); Mamba: (B, T) or None
    attention_mask: torch.Tensor | None  # the 2-D padding mask as given: (B, past + T) with a cache
    past_length: int | None = None  # tokens already in the cache (attention families), None for Mamba/Mamba2
    position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None  # rotary (cos, sin): GPT-NeoX, Llama


class Segment(nn.Module):
    """Base of a layer-range module.

    ``forward(h, attention_mask=None, position_ids=None, context=None)``: (B, T, d_m) -> (B, T, d_m).

    ``attention_mask`` is the usual (B, T) 1/0 padding mask or None (no padding). ``position_ids``
    (B or 1, T) defaults to 0..T-1 for every row, as the families' own ``forward`` does when called
    without ``position_ids`` (they do *not* shift positions past left padding; ``generate`` does,
    and a caller who wants that passes its own ``position_ids``). Recurrent families ignore it.

    ``context`` (a ``StepContext`` from the adapter's ``prepare``): run with its cache, positions and
    masks; ``attention_mask`` and ``position_ids`` are then ignored (``prepare`` took them). Without
    it the segment runs the full sequence without a cache, as it always did.
    """

    def __init__(self, start: int, stop: int):
        super().__init__()
        self.start = start
        self.stop = stop

    def extra_repr(self) -> str:
        return f"layers=[{self.start}, {self.stop})"

    def shard_units(self) -> list[nn.Module]:
        """The modules FSDP may shard as units: modules whose parameters are used only inside their own
        forward call (FSDP gathers them in hooks around that call). By default each of ``self.layers``
        (a segment without them is one unit)."""
        layers = getattr(self, "layers", None)
        return list(layers) if layers is not None and len(layers) else [self]


class ComponentAdapter(ABC):
    """Wraps one loaded transformers causal-LM of the family."""

    family_name: ClassVar[str]

    def __init__(self, model: nn.Module):
        self.model = model
        self.config = model.config

    @property
    def num_layers(self) -> int:
        return len(self.layers())

    @abstractmethod
    def layers(self) -> nn.ModuleList:
        """The model's decoder layers, in order."""

    @abstractmethod
    def embedding(self) -> nn.Module:
        """Token embedding module: ids (B, T) long -> (B, T, d_m)."""

    @abstractmethod
    def segment(self, start: int, stop: int) -> Segment:
        """Layers [start, stop) with everything the family does around them (see module doc)."""

    @abstractmethod
    def lm_head(self) -> nn.Module:
        """LM head: (B, T, d_m) -> (B, T, V_m)."""

    def new_cache(self) -> Cache:
        """An empty cache of this component: ``DynamicCache(config=...)`` with its own layer types, as
        the family's model forward creates it. Each call returns a new, independent cache."""
        return DynamicCache(config=self.config)

    def prepare(
        self,
        h: torch.Tensor,  # (B, T, ...): only its batch size, length, dtype and device are used
        attention_mask: torch.Tensor | None = None,  # (B, past + T) 1/0
        position_ids: torch.Tensor | None = None,  # (B or 1, T)
        cache: Cache | None = None,
    ) -> StepContext:
        """The component's ``StepContext`` for one forward of T tokens that follow what ``cache`` holds.

        Call it once per forward, before any segment of the component runs (the segments update the
        cache). Positions default to past..past+T-1. ``h``'s dtype matters: eager masks and rotary
        tables are built in it, so pass a tensor of the dtype the segments will receive.

        Default: the attention families' context (``attention_context``, with ``rotary_embedding()``);
        recurrent families override it.
        """
        return attention_context(self.config, h, attention_mask, position_ids, cache, self.rotary_embedding())

    def rotary_embedding(self) -> nn.Module | None:
        """The family's rotary embedding module (positions -> (cos, sin)), None when it has none."""
        return None

    def check_range(self, start: int, stop: int) -> None:
        """Raise ValueError unless [start, stop) is a non-empty range of this model's layers."""
        if not 0 <= start < stop <= self.num_layers:
            raise ValueError(f"layer range [{start}, {stop}) is not inside [0, {self.num_layers}) or is empty")


def cached_length(cache: Cache | None) -> tuple[int, int | None]:
    """(tokens in ``cache``, index of a key/value layer holding them), (0, None) without a cache.

    A hybrid may run only some of a component's layers (a discretized hybrid that picked it for its
    last blocks, say), so layer 0 -- what transformers sizes masks against by default -- may never
    be filled: take the longest key/value layer instead (the layers that run all hold the same tokens).
    """
    if cache is None:
        return 0, None
    best, index = 0, 0
    for i, layer in enumerate(cache.layers):
        if isinstance(layer, CacheLayerMixin):
            length = layer.get_seq_length()
            if length > best:
                best, index = length, i
    return best, index


def check_length(cache: Cache | None, length: int, limit: int, what: str) -> None:
    """ValueError when the cached plus new tokens exceed ``limit`` (a family's fixed-size table)."""
    past, _ = cached_length(cache)
    if past + length > limit:
        raise ValueError(f"{past} cached + {length} new tokens exceed the {limit} {what}")


def attention_context(
    config: Any,
    h: torch.Tensor,  # (B, T, ...)
    attention_mask: torch.Tensor | None,  # (B, past + T)
    position_ids: torch.Tensor | None,  # (B or 1, T)
    cache: Cache | None,
    rotary_emb: nn.Module | None = None,
) -> StepContext:
    """``prepare`` of the attention families: what their model forward computes before the layers.

    Positions default to ``arange(T) + past``; the causal mask is ``create_causal_mask`` against the
    cache (so it covers past + T keys); rotary (cos, sin) when the family has ``rotary_emb``.

    The mask is built from the model's own config, so it matches its attention implementation: eager
    gets a float (B, 1, T, past + T) mask even without padding (never None, which eager would read as
    "no mask", i.e. non-causal); sdpa gets None (``is_causal``) without padding, a bool mask with it.
    """
    length = h.shape[1]
    past, layer_idx = cached_length(cache)
    if cache is not None and attention_mask is not None and attention_mask.ndim == 2:
        if attention_mask.shape[-1] != past + length:
            raise ValueError(
                f"attention_mask has {attention_mask.shape[-1]} columns; with {past} cached tokens and "
                f"{length} new ones it must cover all {past + length} (the whole sequence so far)"
            )
    if position_ids is None:
        position_ids = torch.arange(past, past + length, device=h.device).unsqueeze(0)
    elif position_ids.shape[-1] != length:
        raise ValueError(f"position_ids cover {position_ids.shape[-1]} tokens, the input has {length}")
    mask = create_causal_mask(
        config=config,
        inputs_embeds=h,
        attention_mask=attention_mask,
        past_key_values=cache,
        position_ids=position_ids,
        layer_idx=layer_idx,
    )
    rotary = rotary_emb(h, position_ids=position_ids) if rotary_emb is not None else None
    return StepContext(
        cache=cache,
        position_ids=position_ids,
        mask=mask,
        attention_mask=attention_mask,
        past_length=past,
        position_embeddings=rotary,
    )


def layer_output(out: torch.Tensor | tuple) -> torch.Tensor:
    """Hidden states from a decoder layer's output (a tensor, or a tuple led by it)."""
    return out[0] if isinstance(out, tuple) else out

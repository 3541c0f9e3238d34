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
from transformers.cache_utils import Cache, DynamicCache


@dataclass(frozen=True)
class StepContext:
    """One component's state for one forward of its segments, from ``ComponentAdapter.prepare``.

    Computed before any segment of the component runs, shared by all of them (frozen: segments only
    read it; the cache object itself is updated in place by the layers).
    """

    cache: Cache | None  # the component's own transformers cache, None: full sequence, no cache
    position_ids: torch.Tensor | None  # (B or 1, T) positions of this step's tokens; None for Mamba/Mamba2
    mask: Any  # Mamba/Mamba2: the padding mask their layers take, (B, T) or None
    attention_mask: torch.Tensor | None  # the 2-D padding mask as given: (B, past + T) with a cache
    past_length: int | None = None  # tokens already in the cache, None for Mamba/Mamba2
    # the generic adapter (``decoder.DecoderAdapter``): per layer of the model, the arguments its family's
    # forward gives it besides the hidden state; and the inputs of its position modules (GPT-2's wpe)
    calls: tuple[tuple[tuple[Any, ...], dict[str, Any]], ...] | None = None
    position_inputs: dict[str, tuple[Any, ...]] | None = None


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

    @abstractmethod
    def prepare(
        self,
        h: torch.Tensor,  # (B, T, ...): its batch size, length, dtype and device (and for Zamba2 its values)
        attention_mask: torch.Tensor | None = None,  # (B, past + T) 1/0
        position_ids: torch.Tensor | None = None,  # (B or 1, T)
        cache: Cache | None = None,
    ) -> StepContext:
        """The component's ``StepContext`` for one forward of T tokens that follow what ``cache`` holds.

        Call it once per forward, before any segment of the component runs (the segments update the
        cache). Positions default to past..past+T-1. ``h``'s dtype matters: eager masks and rotary
        tables are built in it, so pass a tensor of the dtype the segments will receive.
        """

    def logit_ops(self) -> tuple[tuple[str, float], ...]:
        """What the family's ``*ForCausalLM`` does to its head's output ((kind, value) pairs, see
        ``decoder.apply_logit_ops``): nothing by default."""
        return ()

    def check_range(self, start: int, stop: int) -> None:
        """Raise ValueError unless [start, stop) is a non-empty range of this model's layers."""
        if not 0 <= start < stop <= self.num_layers:
            raise ValueError(f"layer range [{start}, {stop}) is not inside [0, {self.num_layers}) or is empty")


def layer_output(out: torch.Tensor | tuple) -> torch.Tensor:
    """Hidden states from a decoder layer's output (a tensor, or a tuple led by it)."""
    return out[0] if isinstance(out, tuple) else out

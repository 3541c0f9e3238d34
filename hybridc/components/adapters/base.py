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
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
from torch import nn
from transformers.masking_utils import create_causal_mask


class Segment(nn.Module):
    """Base of a layer-range module.

    ``forward(h, attention_mask=None, position_ids=None)``: (B, T, d_m) -> (B, T, d_m).

    ``attention_mask`` is the usual (B, T) 1/0 padding mask or None (no padding). ``position_ids``
    (B or 1, T) defaults to 0..T-1 for every row, as the families' own ``forward`` does when called
    without ``position_ids`` (they do *not* shift positions past left padding; ``generate`` does,
    and a caller who wants that passes its own ``position_ids``). Recurrent families ignore it.
    """

    def __init__(self, start: int, stop: int):
        super().__init__()
        self.start = start
        self.stop = stop

    def extra_repr(self) -> str:
        return f"layers=[{self.start}, {self.stop})"


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

    def check_range(self, start: int, stop: int) -> None:
        """Raise ValueError unless [start, stop) is a non-empty range of this model's layers."""
        if not 0 <= start < stop <= self.num_layers:
            raise ValueError(f"layer range [{start}, {stop}) is not inside [0, {self.num_layers}) or is empty")


def default_position_ids(h: torch.Tensor) -> torch.Tensor:
    """Positions (1, T) = 0..T-1, what every attention family uses when given none."""
    return torch.arange(h.shape[1], device=h.device).unsqueeze(0)


def causal_mask(config: Any, h: torch.Tensor, attention_mask: torch.Tensor | None, position_ids: torch.Tensor):
    """The 4D mask (or None under sdpa without padding) the family's own forward builds.

    Built from the model's own config, so it matches its attention implementation: eager gets a
    float (B, 1, T, T) mask even without padding (never None, which eager would read as "no mask",
    i.e. non-causal); sdpa gets None (``is_causal``) without padding and a bool mask with padding.
    """
    return create_causal_mask(
        config=config,
        inputs_embeds=h,
        attention_mask=attention_mask,
        past_key_values=None,
        position_ids=position_ids,
    )


def layer_output(out: torch.Tensor | tuple) -> torch.Tensor:
    """Hidden states from a decoder layer's output (a tensor, or a tuple led by it)."""
    return out[0] if isinstance(out, tuple) else out

"""Recurrent cache layers that can forget their last tokens, so that Mamba and Mamba-2 components take part in
assisted generation (prompt lookup, a draft model), which feeds candidate tokens and then crops the rejected ones.

transformers' conv + SSM state layer (``LinearAttentionLayer``) keeps one state, the state after every token fed:
its ``crop`` can shorten the conv inputs it kept (with ``record_past``) but not undo the SSM state, so transformers
refuses assisted generation for stateful models. ``JournaledRecurrentLayer`` keeps, once
``activate_past_recording`` has been called, a journal since its last ``crop``: its states before the first
forward (a checkpoint) and the input of every forward of its layer since (the block's input (B, T, d) and padding
mask). ``crop(-k)`` puts the checkpoint back and runs the layer again on all but the last k journaled tokens (the
segment's own forward, its output dropped), which leaves exactly the states a forward of those tokens alone would
have left: the layer is causal, so its input at the kept tokens did not depend on the forgotten ones. The journal is
then emptied (the states are the next checkpoint). It costs one clone of the states per crop interval and a forward
of the kept tokens per crop that forgets any; without ``activate_past_recording`` nothing is journaled.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from transformers.cache_utils import DynamicCache, LinearAttentionCacheLayerMixin, LinearAttentionLayer

Replay = Callable[[torch.Tensor, "torch.Tensor | None"], Any]  # (h (B, T, d), mask (B, T) or None) -> anything
_STATE = ("conv_states", "recurrent_states", "is_conv_states_initialized", "is_recurrent_states_initialized",
          "has_previous_state", "conv_kernel_size", "device", "dtype")


class JournaledRecurrentLayer(LinearAttentionLayer):
    """transformers' ``LinearAttentionLayer`` (conv and SSM states) that rolls back (see the module doc)."""

    forgets_tokens = True  # (what HybridCache.rollback_problems asks of a layer)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.journaling = False
        self._checkpoint: dict[str, Any] | None = None
        self._inputs: list[tuple[torch.Tensor, torch.Tensor | None]] = []
        self._replay: Replay | None = None

    def activate_past_recording(self) -> None:
        """Journal every forward from now on (transformers' ``record_past`` stays off: its decoding paths run as
        usual, and the journal alone undoes them)."""
        self.journaling = True

    @property
    def is_croppable(self) -> bool:
        return self.journaling

    def journal(self, h: torch.Tensor, mask: torch.Tensor | None, replay: Replay) -> None:
        """Record the input of a forward of this layer about to run: ``h`` (B, T, d), ``mask`` (B, T) or None;
        ``replay(h, mask)`` runs the layer with this cache (what ``crop`` calls on the kept tokens)."""
        if not self.journaling:
            return
        if self._checkpoint is None:
            self._checkpoint = {name: _copied(getattr(self, name)) for name in _STATE}
        self._inputs.append((h.detach(), None if mask is None else mask.detach()))
        self._replay = replay

    def journaled_tokens(self) -> int:
        return sum(h.shape[1] for h, _ in self._inputs)

    def crop(self, tokens_to_remove: int) -> None:
        """Forget the last ``-tokens_to_remove`` tokens (transformers' convention: a negative count; 0 only
        ends the journal's interval)."""
        if tokens_to_remove > 0:
            raise ValueError(f"crop takes a negative number of tokens to forget, not {tokens_to_remove}")
        forget = -tokens_to_remove
        try:
            if forget:
                self._roll_back(forget)
        finally:
            self._checkpoint, self._inputs, self._replay = None, [], None

    def _roll_back(self, forget: int) -> None:
        if not self.journaling:
            raise RuntimeError("this Mamba cache layer forgets tokens only after activate_past_recording() (which "
                               "assisted generation calls)")
        fed = self.journaled_tokens()
        if not fed and not any(self.is_conv_states_initialized.values()) \
                and not any(self.is_recurrent_states_initialized.values()):
            return  # a layer that never ran (a discretized hybrid's unselected segment): nothing to forget
        if forget > fed:
            raise ValueError(f"cannot forget {forget} tokens: this Mamba cache layer was fed {fed} since it was last "
                             "cropped, and keeps no state from before")
        for name, value in self._checkpoint.items():
            setattr(self, name, _copied(value))
        keep = fed - forget
        if keep:
            h = torch.cat([h for h, _ in self._inputs], dim=1)[:, :keep]  # (B, keep, d)
            masks = [m if m is not None else torch.ones(h.shape[0], x.shape[1], dtype=torch.long, device=h.device)
                     for x, m in self._inputs]
            mask = torch.cat(masks, dim=1)[:, :keep] if any(m is not None for _, m in self._inputs) else None
            self.journaling = False  # (the replay must not journal itself)
            try:
                with torch.no_grad():
                    self._replay(h, mask)
            finally:
                self.journaling = True

    def reset(self) -> None:
        super().reset()
        self._checkpoint, self._inputs, self._replay = None, [], None


def _copied(value: Any) -> Any:
    """A copy of a layer attribute: dicts and tensors copied (clones), anything else as it is."""
    if isinstance(value, dict):
        return {k: _copied(v) for k, v in value.items()}
    if isinstance(value, torch.Tensor):
        return value.clone()
    return value


def journaled_cache(config) -> DynamicCache:
    """``DynamicCache(config=config)`` (a Mamba or Mamba-2 model's: conv + SSM state layers) whose state layers
    can forget tokens (``JournaledRecurrentLayer``)."""
    cache = DynamicCache(config=config)
    cache.layers = [JournaledRecurrentLayer(number_of_states=layer.number_of_states)
                    if type(layer) is LinearAttentionLayer else layer for layer in cache.layers]
    return cache


def journal(cache, layer_idx: int, h: torch.Tensor, mask: torch.Tensor | None, replay: Replay) -> None:
    """Journal a forward of layer ``layer_idx`` in ``cache`` when its layer keeps a journal (see the module doc)."""
    layers = getattr(cache, "layers", ())
    if layer_idx < len(layers) and getattr(layers[layer_idx], "journaling", False):
        layers[layer_idx].journal(h, mask, replay)


def forgets_tokens(layer) -> bool:
    """Whether a cache layer's ``crop`` can forget tokens exactly: key/value layers, journaled recurrent layers;
    not transformers' own conv/SSM state layers (the SSM state cannot be undone) nor RWKV's or xLSTM's states."""
    explicit = getattr(layer, "forgets_tokens", None)
    if explicit is not None:
        return bool(explicit)
    return bool(getattr(layer, "is_croppable", False)) and not isinstance(layer, LinearAttentionCacheLayerMixin)

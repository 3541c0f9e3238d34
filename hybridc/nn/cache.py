"""The generation cache of a hybrid: one transformers cache per component, each indexed by that
component's own layer numbers (key/value layers for attention components, conv + SSM states for Mamba).

``HybridCache`` is a transformers ``Cache`` whose layer list is the concatenation of the component caches'
layers (the same objects), so everything ``generate`` does to a cache — reordering for beam search,
repeating for several return sequences, selecting batch rows, recording the past and cropping rejected
candidates in assisted generation — reaches every component. Caching is exact
because everything between segments (projectors, gates, mixtures) acts position by position.
"""

from __future__ import annotations

from collections.abc import Mapping

from transformers.cache_utils import Cache


class HybridCache(Cache):
    def __init__(self, caches: Mapping[str, Cache]):
        self.components = dict(caches)
        layers = [layer for cache in self.components.values() for layer in cache.layers]
        super().__init__(layers=layers)
        self.seen = 0  # tokens processed so far (every component sees every token)

    def component(self, name: str) -> Cache:
        return self.components[name]

    def advance(self, tokens: int) -> None:
        """Count ``tokens`` more tokens seen (every component's ``prepare`` counted them in its own cache)."""
        self.seen += tokens

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.seen

    def reset(self) -> None:
        for cache in self.components.values():
            cache.reset()
        self.seen = 0

    def crop(self, tokens_to_remove: int) -> None:
        """Forget the last ``-tokens_to_remove`` tokens in every component (transformers' convention: a negative
        count; assisted generation forgets the rejected candidates). Key/value layers drop them; Mamba's and
        Mamba-2's state layers roll back (``components.adapters.rollback``, after ``activate_past_recording``)."""
        if tokens_to_remove > 0:
            raise ValueError(f"crop takes a negative number of tokens to forget, not {tokens_to_remove}")
        for cache in self.components.values():
            cache.crop(tokens_to_remove)
        self.seen = max(0, self.seen + tokens_to_remove)

    def stop_recording(self) -> None:
        """Undo ``activate_past_recording``: the state layers keep no journal and sliding-window layers no past
        beyond their window (what ``generate`` leaves recording after assisted generation)."""
        for layer in self.layers:
            if getattr(layer, "journaling", False):
                layer.crop(0)  # (ends the journal's interval)
                layer.journaling = False
            if getattr(layer, "record_past", False):
                if getattr(layer, "is_initialized", True):
                    layer.crop(0)  # (a sliding-window layer back to its window)
                layer.record_past = False

    def rollback_problems(self) -> list[str]:
        """The components whose cache cannot forget tokens exactly (a recurrent state that cannot be undone:
        RWKV, xLSTM, the recurrent layers of a generic family), which assisted generation needs."""
        from ..components.adapters.rollback import forgets_tokens

        return [name for name, cache in self.components.items() if not all(forgets_tokens(x) for x in cache.layers)]

    @property
    def is_compileable(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"HybridCache({', '.join(f'{k}: {len(v.layers)} layers' for k, v in self.components.items())}, seen={self.seen})"



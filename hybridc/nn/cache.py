"""The generation cache of a hybrid: one transformers cache per component, each indexed by that
component's own layer numbers (key/value layers for attention components, conv + SSM states for Mamba).

``HybridCache`` is a transformers ``Cache`` whose layer list is the concatenation of the component caches'
layers (the same objects), so everything ``generate`` does to a cache — reordering for beam search,
repeating for several return sequences, selecting batch rows — reaches every component. Caching is exact
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
        for cache in self.components.values():
            cache.crop(tokens_to_remove)
        self.seen = max(0, self.seen - tokens_to_remove) if tokens_to_remove > 0 else self.seen

    @property
    def is_compileable(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"HybridCache({', '.join(f'{k}: {len(v.layers)} layers' for k, v in self.components.items())}, seen={self.seen})"



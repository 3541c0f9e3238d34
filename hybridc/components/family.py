"""What hybridc knows about a model family without importing torch.

A ``Family`` reads a Hugging Face ``config.json`` dict (merged over the family's defaults) and
answers shape questions (width, layers, vocabulary, context length), builds configs for
from-scratch components, and gives exact parameter counts and FLOP estimates per part, so the
front end and the block graph stay torch-free. The torch side of a family is its adapter
(``Family.adapter`` names it as ``"module:Class"``; imported only when a model is built).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, ClassVar


# The largest sizes hybridc builds, past any real model's (the largest have ~130 layers, width ~25k, vocabularies
# ~260k): a number beyond them is a typo, and building it would exhaust memory. Checked before a from-scratch
# config is made, whose per-layer lists (layer types, attention patterns) have one entry per layer.
MAX_LAYERS = 10_000
MAX_WIDTH = 1 << 20
MAX_VOCAB = 1 << 24


@dataclass(frozen=True)
class ConfigKeys:
    """Names of the common quantities in a family's transformers config."""

    hidden: str
    layers: str
    vocab: str
    heads: str | None = None
    max_length: str | None = None


@dataclass(frozen=True)
class Shape:
    """A component's resolved shape."""

    hidden_size: int
    num_layers: int
    vocab_size: int
    max_length: int | None  # None: no limit (recurrent families)
    tied_embeddings: bool


@dataclass(frozen=True)
class ParamCounts:
    """Exact parameter counts of a component's parts, as the adapter splits them.

    embedding: token embedding (the ``embed`` node).
    position:  parameters the segment that starts at layer 0 owns besides its layers (e.g. GPT-Neo wpe).
    layers:    one count per layer (its own parameters).
    shared:    parameters several layers use, with the layers that use them (owned by the first segment
               of the graph that runs one of those layers).
    final_norm: owned by the segment that ends at the last layer.
    head:      the LM head's own parameters (0 when tied to the token embedding).
    """

    embedding: int
    position: int
    layers: tuple[int, ...]
    final_norm: int
    head: int
    # parameters several layers use (Zamba2's shared blocks), in none of ``layers``: (count, those layers)
    shared: tuple[tuple[int, tuple[int, ...]], ...] = ()

    @property
    def total(self) -> int:
        return (self.embedding + self.position + sum(self.layers) + self.final_norm + self.head
                + sum(count for count, _ in self.shared))


@cache
def family_defaults() -> Mapping[str, Any]:
    """Defaults of every built-in family's transformers config, keyed by family name.

    Generated from the installed transformers by ``scripts/gen_family_defaults.py`` (a test checks the
    file matches), so reading a config never needs to import transformers (and with it, torch).
    """
    text = resources.files("hybridc.components").joinpath("family_defaults.json").read_text()
    return json.loads(text)


class Family:
    """Base class of a family descriptor. Subclasses set the class attributes and formulas."""

    name: ClassVar[str]
    model_types: ClassVar[tuple[str, ...]]  # config.json "model_type" values of this family
    keys: ClassVar[ConfigKeys]
    model_class: ClassVar[str]  # "transformers:GPTNeoForCausalLM"
    adapter: ClassVar[str]  # "hybridc.components.adapters.mamba:MambaAdapter"
    # where the family's model keeps its parts (hybridc.components.architectures); None for a plugin
    # whose adapter knows its own layout
    architecture: ClassVar[Any] = None
    has_attention: ClassVar[bool] = True
    # its parameter counts, FLOPs and decode state are measured on its model built on PyTorch's meta device
    # (``GenericFamily``), not given by torch-free formulas: the front end (``validate``) cannot ask for them
    measured_on_meta: ClassVar[bool] = False

    # ---- configs -------------------------------------------------------------------------
    def defaults(self) -> Mapping[str, Any]:
        """The family's transformers config defaults (every key the config accepts)."""
        return family_defaults()[self.name]

    def known_keys(self) -> frozenset[str]:
        return frozenset(self.defaults())

    def full_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """``config`` (a config.json dict) completed with the family's defaults."""
        merged = dict(self.defaults())
        merged.update(config)
        return merged

    def init_config(self, common: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
        """A config.json dict for a randomly initialised component.

        ``common`` holds the spec's common keys under generic names (hidden_size, layers, heads,
        vocab_size, max_length; None means not given), ``extra`` the family-specific keys. Both are
        applied over the family's defaults, then ``complete_init_config`` fills whatever makes a
        small config consistent, never overwriting a key the user gave.
        """
        config = dict(self.defaults())
        config["model_type"] = self.model_types[0]
        mapping = {
            "hidden_size": self.keys.hidden,
            "layers": self.keys.layers,
            "heads": self.keys.heads,
            "vocab_size": self.keys.vocab,
            "max_length": self.keys.max_length,
        }
        given: dict[str, Any] = {}
        for generic, value in common.items():
            key = mapping.get(generic)
            if key is not None and value is not None:
                config[key] = value
                given[key] = value
        config.update(extra)
        given.update(extra)
        layers = config.get(self.keys.layers)
        if isinstance(layers, (int, float)) and not isinstance(layers, bool) and layers > MAX_LAYERS:
            raise ValueError(f"{layers:,} layers, more than hybridc builds (at most {MAX_LAYERS:,})")
        return self.complete_init_config(config, given)

    def complete_init_config(self, config: dict[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
        """Hook: make a from-scratch config consistent; keys in ``given`` (the user's) are kept."""
        return config

    # ---- shape ---------------------------------------------------------------------------
    def shape(self, config: Mapping[str, Any]) -> Shape:
        cfg = self.full_config(config)
        max_length = cfg.get(self.keys.max_length) if self.keys.max_length else None
        return Shape(
            hidden_size=int(cfg[self.keys.hidden]),
            num_layers=int(cfg[self.keys.layers]),
            vocab_size=int(cfg[self.keys.vocab]),
            max_length=int(max_length) if max_length is not None else None,
            tied_embeddings=bool(cfg.get("tie_word_embeddings", True)),
        )

    def config_problems(self, config: Mapping[str, Any]) -> list[str]:
        """Why a model of this config cannot be built (sizes its layers reject), in words; [] when it can."""
        return []

    # ---- cost ----------------------------------------------------------------------------
    def param_counts(self, config: Mapping[str, Any]) -> ParamCounts:
        raise NotImplementedError

    def layer_flops_per_token(self, config: Mapping[str, Any], seq_len: int) -> int:
        """Forward FLOPs per token of one layer at context ``seq_len`` (2 x multiply-adds)."""
        raise NotImplementedError

    def layers_flops_per_token(self, config: Mapping[str, Any], seq_len: int) -> tuple[int, ...]:
        """Forward FLOPs per token of each layer at context ``seq_len``; by default all layers cost alike."""
        return (self.layer_flops_per_token(config, seq_len),) * self.shape(config).num_layers

    def layers_decode_state(self, config: Mapping[str, Any], seq_len: int) -> tuple[int | None, ...]:
        """Numbers each layer keeps per sequence while decoding after ``seq_len`` tokens (KV cache, recurrent
        state); None where unknown."""
        raise NotImplementedError

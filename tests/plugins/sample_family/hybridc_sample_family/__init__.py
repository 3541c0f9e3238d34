"""A sample hybridc plugin family: ``sample-shift``, a tiny language model whose layers mix each token with
the one before it (a token shift, as RWKV's), so it has a state to cache and padding to respect.

This module is the family's torch-free descriptor (what ``hybridc validate`` reads); ``modeling`` is its
transformers model and ``adapter`` cuts it into the parts a hybrid runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hybridc.components.family import ConfigKeys, Family, ParamCounts

# ShiftConfig's defaults (modeling.ShiftConfig), written out so that reading a config never imports torch
DEFAULTS: dict[str, Any] = {
    "model_type": "sample_shift",
    "vocab_size": 96,
    "hidden_size": 32,
    "num_hidden_layers": 3,
    "intermediate_size": 64,
    "rms_norm_eps": 1e-6,
    "initializer_range": 0.02,
    "tie_word_embeddings": True,
    "pad_token_id": None,
    "bos_token_id": None,
    "eos_token_id": None,
}


class ShiftFamily(Family):
    name = "sample-shift"
    model_types = ("sample_shift",)
    keys = ConfigKeys(hidden="hidden_size", layers="num_hidden_layers", vocab="vocab_size")
    model_class = "hybridc_sample_family.modeling:ShiftForCausalLM"
    adapter = "hybridc_sample_family.adapter:ShiftAdapter"
    has_attention = False

    def defaults(self) -> Mapping[str, Any]:
        return DEFAULTS

    def complete_init_config(self, config: dict[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
        """``intermediate_size = 2 * hidden_size`` unless given."""
        if "intermediate_size" not in given:
            config["intermediate_size"] = 2 * int(config["hidden_size"])
        return config

    def param_counts(self, config: Mapping[str, Any]) -> ParamCounts:
        cfg = self.full_config(config)
        d, inner, vocab = int(cfg["hidden_size"]), int(cfg["intermediate_size"]), int(cfg["vocab_size"])
        layer = d + 2 * d * inner + inner * d  # norm, mix (2d -> I), out (I -> d)
        return ParamCounts(embedding=vocab * d, position=0, layers=(layer,) * int(cfg["num_hidden_layers"]),
                           final_norm=d, head=0 if cfg.get("tie_word_embeddings", True) else vocab * d)

    def layer_flops_per_token(self, config: Mapping[str, Any], seq_len: int) -> int:
        cfg = self.full_config(config)
        d, inner = int(cfg["hidden_size"]), int(cfg["intermediate_size"])
        return 2 * (2 * d * inner + inner * d)

    def layers_decode_state(self, config: Mapping[str, Any], seq_len: int) -> tuple[int, ...]:
        """The cache keeps every token's normed state (as keys and values of a ``DynamicCache`` layer)."""
        cfg = self.full_config(config)
        return (2 * seq_len * int(cfg["hidden_size"]),) * int(cfg["num_hidden_layers"])

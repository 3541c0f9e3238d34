"""GPT-NeoX / Pythia (EleutherAI/pythia-*): rotary positions, parallel residual, fused QKV."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..architectures import ARCHITECTURES
from ..family import ParamCounts
from . import BuiltinFamily, attention_flops, head_params, kv_cache, layer_norm, linear, matmul_flops, set_unless_given


class GPTNeoX(BuiltinFamily):
    name = "gpt-neox"
    model_types = ("gpt_neox",)
    model_class = "transformers:GPTNeoXForCausalLM"
    adapter = "hybridc.components.adapters.decoder:DecoderAdapter"
    architecture = ARCHITECTURES["gpt-neox"]
    keys = architecture.keys
    has_attention = True
    # Legacy rotary keys of Pythia's config.json, folded into rope_parameters by the config class.
    extra_known_keys = frozenset(
        {"rotary_pct", "rotary_emb_base", "rope_scaling", "rope_theta", "partial_rotary_factor"}
    )

    def complete_init_config(self, config: dict[str, Any], common: Mapping[str, Any]) -> dict[str, Any]:
        """``intermediate_size = 4 * hidden`` unless given (the default 24576 is GPT-NeoX-20B's)."""
        config = super().complete_init_config(config, common)
        set_unless_given(config, common, "intermediate_size", 4 * int(config["hidden_size"]))
        return config

    def param_counts(self, config: Mapping[str, Any]) -> ParamCounts:
        cfg = self.full_config(config)
        d = int(cfg["hidden_size"])
        inner = int(cfg["intermediate_size"])
        vocab = int(cfg["vocab_size"])
        bias = bool(cfg.get("attention_bias", True))
        layer = (
            2 * layer_norm(d)  # input_layernorm, post_attention_layernorm
            + linear(d, 3 * d, bias)  # query_key_value
            + linear(d, d, bias)  # dense
            + linear(d, inner, bias=True)  # dense_h_to_4h
            + linear(inner, d, bias=True)  # dense_4h_to_h
        )
        return ParamCounts(
            embedding=vocab * d,
            position=0,  # rotary: buffers only
            layers=(layer,) * int(cfg["num_hidden_layers"]),
            final_norm=layer_norm(d),
            head=head_params(cfg, d, vocab),
        )

    def layers_decode_state(self, config: Mapping[str, Any], seq_len: int) -> tuple[int, ...]:
        """Keys and values of every head: 2 T d per layer."""
        cfg = self.full_config(config)
        return (kv_cache(seq_len, int(cfg["hidden_size"])),) * int(cfg["num_hidden_layers"])

    def layer_flops_per_token(self, config: Mapping[str, Any], seq_len: int) -> int:
        """2 * (4 d^2 + 2 d I) for the projections + 4 * T * d for scores and values (rotary ignored)."""
        cfg = self.full_config(config)
        d = int(cfg["hidden_size"])
        inner = int(cfg["intermediate_size"])
        return matmul_flops(4 * d * d + 2 * d * inner) + attention_flops(seq_len, d)

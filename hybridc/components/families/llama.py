"""Llama (and Llama-architecture checkpoints): RMSNorm, rotary positions, GQA, SwiGLU MLP."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..architectures import ARCHITECTURES
from ..family import ParamCounts
from . import (BuiltinFamily, attention_flops, divides, head_params, kv_cache, linear, matmul_flops, not_positive,
               set_unless_given)


class Llama(BuiltinFamily):
    name = "llama"
    model_types = ("llama",)
    model_class = "transformers:LlamaForCausalLM"
    adapter = "hybridc.components.adapters.decoder:DecoderAdapter"
    architecture = ARCHITECTURES["llama"]
    keys = architecture.keys
    has_attention = True
    extra_known_keys = frozenset({"rope_scaling", "rope_theta", "partial_rotary_factor"})

    def complete_init_config(self, config: dict[str, Any], common: Mapping[str, Any]) -> dict[str, Any]:
        """``intermediate_size = 4 * hidden`` (the default 11008 is Llama-7B's) and
        ``num_key_value_heads = heads``, each unless given."""
        config = super().complete_init_config(config, common)
        set_unless_given(config, common, "intermediate_size", 4 * int(config["hidden_size"]))
        set_unless_given(config, common, "num_key_value_heads", int(config["num_attention_heads"]))
        return config

    def config_problems(self, config: Mapping[str, Any]) -> list[str]:
        """What ``LlamaConfig`` and Llama's attention refuse: key-value heads and head widths below 1, query heads
        that do not split evenly over the key-value heads, a width that is not a multiple of the heads (which
        the config class requires even with an explicit ``head_dim``)."""
        cfg = self.full_config(config)
        problems = not_positive(cfg, "num_key_value_heads", "head_dim")
        if not problems:
            problems += divides(cfg, "num_key_value_heads", "num_attention_heads",
                                "each key-value head serves the same number of query heads")
        heads, d = cfg.get("num_attention_heads"), cfg.get("hidden_size")
        if cfg.get("head_dim") is not None and isinstance(heads, int) and heads >= 1 and isinstance(d, int) \
                and d % heads:
            problems.append(f"hidden_size ({d}) must be a multiple of num_attention_heads ({heads}), as LlamaConfig "
                            "requires (also with an explicit head_dim)")
        return problems

    @staticmethod
    def _attention_sizes(cfg: Mapping[str, Any]) -> tuple[int, int, int, int]:
        """(d, heads, kv_heads, head_dim), resolving None the way LlamaConfig does."""
        d = int(cfg["hidden_size"])
        heads = int(cfg["num_attention_heads"])
        kv = cfg.get("num_key_value_heads")
        head_dim = cfg.get("head_dim")
        return d, heads, int(kv) if kv is not None else heads, int(head_dim) if head_dim is not None else d // heads

    def param_counts(self, config: Mapping[str, Any]) -> ParamCounts:
        cfg = self.full_config(config)
        d, heads, kv, hd = self._attention_sizes(cfg)
        inner = int(cfg["intermediate_size"])
        vocab = int(cfg["vocab_size"])
        attn_bias = bool(cfg.get("attention_bias", False))
        mlp_bias = bool(cfg.get("mlp_bias", False))
        layer = (
            2 * d  # input_layernorm, post_attention_layernorm (RMSNorm: weight only)
            + linear(d, heads * hd, attn_bias)  # q_proj
            + 2 * linear(d, kv * hd, attn_bias)  # k_proj, v_proj
            + linear(heads * hd, d, attn_bias)  # o_proj
            + 2 * linear(d, inner, mlp_bias)  # gate_proj, up_proj
            + linear(inner, d, mlp_bias)  # down_proj
        )
        return ParamCounts(
            embedding=vocab * d,
            position=0,  # rotary: buffers only
            layers=(layer,) * int(cfg["num_hidden_layers"]),
            final_norm=d,
            head=head_params(cfg, d, vocab),
        )

    def layers_decode_state(self, config: Mapping[str, Any], seq_len: int) -> tuple[int, ...]:
        """Keys and values of the key-value heads: 2 T kv hd per layer."""
        cfg = self.full_config(config)
        _, _, kv, hd = self._attention_sizes(cfg)
        return (kv_cache(seq_len, kv * hd),) * int(cfg["num_hidden_layers"])

    def layer_flops_per_token(self, config: Mapping[str, Any], seq_len: int) -> int:
        """2 * (d*h*hd*2 + 2*d*kv*hd + 3 d I) for the projections + 4 * T * h * hd (scores, values)."""
        cfg = self.full_config(config)
        d, heads, kv, hd = self._attention_sizes(cfg)
        inner = int(cfg["intermediate_size"])
        weights = 2 * d * heads * hd + 2 * d * kv * hd + 3 * d * inner
        return matmul_flops(weights) + attention_flops(seq_len, heads * hd)

"""GPT-Neo (EleutherAI/gpt-neo-*): learned positions, global/local attention, LayerNorm, GELU MLP."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..architectures import ARCHITECTURES
from ..family import ParamCounts
from . import BuiltinFamily, attention_flops, head_params, kv_cache, layer_norm, linear, matmul_flops


class GPTNeo(BuiltinFamily):
    name = "gpt-neo"
    model_types = ("gpt_neo",)
    model_class = "transformers:GPTNeoForCausalLM"
    adapter = "hybridc.components.adapters.decoder:DecoderAdapter"
    architecture = ARCHITECTURES["gpt-neo"]
    keys = architecture.keys
    has_attention = True
    # Derived from attention_types by the config class; a config.json may still carry it.
    extra_known_keys = frozenset({"attention_layers"})

    def complete_init_config(self, config: dict[str, Any], common: Mapping[str, Any]) -> dict[str, Any]:
        """All-global attention over exactly ``num_layers`` layers; special ids inside the vocab."""
        config = super().complete_init_config(config, common)
        if "attention_types" not in common and "attention_layers" not in common:
            config["attention_types"] = [[["global"], int(config["num_layers"])]]
            config.pop("attention_layers", None)  # the config class derives it from attention_types
        return config

    @staticmethod
    def _sizes(cfg: Mapping[str, Any]) -> tuple[int, int]:
        hidden = int(cfg["hidden_size"])
        inner = cfg.get("intermediate_size")
        return hidden, int(inner) if inner is not None else 4 * hidden

    def param_counts(self, config: Mapping[str, Any]) -> ParamCounts:
        cfg = self.full_config(config)
        d, inner = self._sizes(cfg)
        vocab = int(cfg["vocab_size"])
        layer = (
            2 * layer_norm(d)  # ln_1, ln_2
            + 3 * linear(d, d, bias=False)  # q, k, v
            + linear(d, d, bias=True)  # out_proj
            + linear(d, inner, bias=True)  # c_fc
            + linear(inner, d, bias=True)  # c_proj
        )
        return ParamCounts(
            embedding=vocab * d,
            position=int(cfg["max_position_embeddings"]) * d,  # wpe
            layers=(layer,) * int(cfg["num_layers"]),
            final_norm=layer_norm(d),
            head=head_params(cfg, d, vocab),
        )

    def layers_decode_state(self, config: Mapping[str, Any], seq_len: int) -> tuple[int, ...]:
        """Keys and values of every head: 2 T d per layer, local layers too (transformers caches every
        token for them and masks to the window)."""
        cfg = self.full_config(config)
        return (kv_cache(seq_len, int(cfg["hidden_size"])),) * int(cfg["num_layers"])

    def layer_flops_per_token(self, config: Mapping[str, Any], seq_len: int) -> int:
        """2 * (4 d^2 + 2 d I) for the projections + 4 * T * d for scores and values.

        Local layers are counted like global ones: GPT-Neo computes the full T x T score matrix and
        masks it to the window, so that is the work done.
        """
        cfg = self.full_config(config)
        d, inner = self._sizes(cfg)
        return matmul_flops(4 * d * d + 2 * d * inner) + attention_flops(seq_len, d)

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

    def config_problems(self, config: Mapping[str, Any]) -> list[str]:
        """What ``GPTNeoConfig`` refuses: ``attention_types`` ([[kinds, repeats], ...], kinds global or local)
        that do not expand to exactly one attention kind per layer."""
        cfg = self.full_config(config)
        types = cfg.get("attention_types")
        if types is None:
            return []
        shape = ("attention_types must be a list of [[kinds...], repeats] pairs, kinds 'global' or 'local' "
                 f"(e.g. [[['global', 'local'], {max(1, int(cfg.get('num_layers') or 2) // 2)}]])")
        if not isinstance(types, list):
            return [shape]
        count = 0
        for item in types:
            if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], list) and item[0]
                    and all(k in ("global", "local") for k in item[0])
                    and isinstance(item[1], int) and not isinstance(item[1], bool) and item[1] >= 0):
                return [shape]
            count += len(item[0]) * item[1]
            if count > 10**7:
                break
        layers = cfg.get("num_layers")
        if isinstance(layers, int) and count != layers:
            return [f"attention_types expands to {count:,} attention layers, but the model has {layers} "
                    "(num_layers): GPTNeoConfig requires one per layer"]
        return []

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

"""GPT-2 (openai-community/gpt2): learned positions, Conv1D projections, LayerNorm, GELU MLP."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..architectures import ARCHITECTURES
from ..family import ParamCounts
from . import BuiltinFamily, attention_flops, head_params, kv_cache, layer_norm, linear, matmul_flops


class GPT2(BuiltinFamily):
    name = "gpt2"
    model_types = ("gpt2",)
    model_class = "transformers:GPT2LMHeadModel"
    adapter = "hybridc.components.adapters.decoder:DecoderAdapter"
    architecture = ARCHITECTURES["gpt2"]
    keys = architecture.keys
    has_attention = True

    # complete_init_config: only the special token ids (BuiltinFamily). n_inner stays None (= 4 d)
    # and the dropouts stay at the family's 0.1.

    @staticmethod
    def _sizes(cfg: Mapping[str, Any]) -> tuple[int, int]:
        hidden = int(cfg["n_embd"])
        inner = cfg.get("n_inner")
        return hidden, int(inner) if inner is not None else 4 * hidden

    def param_counts(self, config: Mapping[str, Any]) -> ParamCounts:
        cfg = self.full_config(config)
        d, inner = self._sizes(cfg)
        vocab = int(cfg["vocab_size"])
        layer = (
            2 * layer_norm(d)  # ln_1, ln_2
            + linear(d, 3 * d, bias=True)  # c_attn
            + linear(d, d, bias=True)  # attn.c_proj
            + linear(d, inner, bias=True)  # mlp.c_fc
            + linear(inner, d, bias=True)  # mlp.c_proj
        )
        if cfg.get("add_cross_attention"):
            layer += (
                layer_norm(d)  # ln_cross_attn
                + linear(d, 2 * d, bias=True)  # crossattention.c_attn (keys, values)
                + linear(d, d, bias=True)  # crossattention.q_attn
                + linear(d, d, bias=True)  # crossattention.c_proj
            )
        return ParamCounts(
            embedding=vocab * d,
            position=int(cfg["n_positions"]) * d,  # wpe
            layers=(layer,) * int(cfg["n_layer"]),
            final_norm=layer_norm(d),
            head=head_params(cfg, d, vocab),
        )

    def layers_decode_state(self, config: Mapping[str, Any], seq_len: int) -> tuple[int, ...]:
        """Keys and values of every head: 2 T d per layer."""
        cfg = self.full_config(config)
        return (kv_cache(seq_len, int(cfg["n_embd"])),) * int(cfg["n_layer"])

    def layer_flops_per_token(self, config: Mapping[str, Any], seq_len: int) -> int:
        """2 * (4 d^2 + 2 d I) for the projections + 4 * T * d for scores and values.

        Cross-attention (only with encoder states, never in a decoder-only hybrid) is not counted.
        """
        cfg = self.full_config(config)
        d, inner = self._sizes(cfg)
        return matmul_flops(4 * d * d + 2 * d * inner) + attention_flops(seq_len, d)

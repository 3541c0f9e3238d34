"""Mamba-2 (state-spaces/mamba2-*, Codestral Mamba): SSD mixer with heads and groups, gated RMSNorm."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..architectures import ARCHITECTURES
from ..family import ParamCounts
from . import BuiltinFamily, divides, head_params, linear, matmul_flops, not_positive, set_unless_given


def _largest_divisor_at_most(n: int, bound: int) -> int:
    return max(k for k in range(1, min(n, bound) + 1) if n % k == 0)


class Mamba2(BuiltinFamily):
    name = "mamba2"
    model_types = ("mamba2",)
    # ``heads`` are the SSM heads (num_heads * head_dim == expand * hidden_size).
    model_class = "transformers:Mamba2ForCausalLM"
    adapter = "hybridc.components.adapters.mamba2:Mamba2Adapter"
    architecture = ARCHITECTURES["mamba2"]
    keys = architecture.keys
    has_attention = False

    def complete_init_config(self, config: dict[str, Any], common: Mapping[str, Any]) -> dict[str, Any]:
        """Make heads, head_dim and groups agree with ``I = expand * hidden``.

        Given ``num_heads`` (the common ``heads``): ``head_dim = I / num_heads``. Given only
        ``head_dim``: ``num_heads = I / head_dim``. Neither: the largest ``head_dim <= 64`` (the
        default) dividing I. ``n_groups`` (default 8) becomes gcd(n_groups, num_heads) unless given,
        so groups divide heads. Raises ValueError when I cannot be split as asked.
        """
        config = super().complete_init_config(config, common)
        inner = int(config["expand"] * int(config["hidden_size"]))
        if inner < 1:
            raise ValueError(f"mamba2: expand * hidden_size = {inner}; the inner width must be at least 1 (expand >= 1)")
        if "num_heads" in common:
            heads = int(config["num_heads"])
            if inner % heads:
                raise ValueError(f"mamba2: expand * hidden_size = {inner} is not divisible by num_heads = {heads}")
            set_unless_given(config, common, "head_dim", inner // heads)
        elif "head_dim" in common:
            head_dim = int(config["head_dim"])
            if inner % head_dim:
                raise ValueError(f"mamba2: expand * hidden_size = {inner} is not divisible by head_dim = {head_dim}")
            config["num_heads"] = inner // head_dim
        else:
            head_dim = _largest_divisor_at_most(inner, int(config["head_dim"]))
            config["head_dim"] = head_dim
            config["num_heads"] = inner // head_dim
        set_unless_given(config, common, "n_groups", math.gcd(int(config["n_groups"]), int(config["num_heads"])))
        return config

    def config_problems(self, config: Mapping[str, Any]) -> list[str]:
        """What ``Mamba2Config`` and the SSD mixer refuse: sizes below 1, ``hidden_size * expand`` other than
        ``num_heads * head_dim`` (the config class's own check), heads that do not split evenly into groups."""
        cfg = self.full_config(config)
        problems = not_positive(cfg, "expand", "num_heads", "head_dim", "n_groups", "state_size", "conv_kernel",
                                "chunk_size")
        if problems:
            return problems
        d, expand, heads, head_dim = (cfg.get(k) for k in ("hidden_size", "expand", "num_heads", "head_dim"))
        if isinstance(d, int) and d * expand != heads * head_dim:
            problems.append(f"hidden_size * expand ({d} * {expand} = {d * expand:,}) must equal num_heads * head_dim "
                            f"({heads} * {head_dim} = {heads * head_dim:,}), as Mamba2Config requires")
        return problems + divides(cfg, "n_groups", "num_heads", "the SSM heads are split evenly over the groups")

    @staticmethod
    def _sizes(cfg: Mapping[str, Any]) -> tuple[int, int, int, int, int, int]:
        """(d, I, H, G, N, k): width, inner width, heads, groups, state size, conv kernel."""
        d = int(cfg["hidden_size"])
        return (
            d,
            int(cfg["expand"] * d),
            int(cfg["num_heads"]),
            int(cfg["n_groups"]),
            int(cfg["state_size"]),
            int(cfg["conv_kernel"]),
        )

    def layers_decode_state(self, config: Mapping[str, Any], seq_len: int) -> tuple[int, ...]:
        """Per layer (I + 2 G N) x k (the convolution's window over x, B and C) + H x (I / H) x N (the SSD
        state), whatever ``seq_len``."""
        cfg = self.full_config(config)
        _, inner, heads, groups, state, kernel = self._sizes(cfg)
        return ((inner + 2 * groups * state) * kernel + inner * state,) * int(cfg["num_hidden_layers"])

    def param_counts(self, config: Mapping[str, Any]) -> ParamCounts:
        cfg = self.full_config(config)
        d, inner, heads, groups, state, kernel = self._sizes(cfg)
        vocab = int(cfg["vocab_size"])
        use_bias = bool(cfg.get("use_bias", False))
        conv_dim = inner + 2 * groups * state  # x, B, C go through the conv
        layer = (
            d  # norm (RMSNorm)
            + linear(d, inner + conv_dim + heads, use_bias)  # in_proj: gate, xBC, dt
            + conv_dim * kernel + (conv_dim if cfg.get("use_conv_bias", True) else 0)  # depthwise conv1d
            + 3 * heads  # dt_bias, A_log, D
            + inner  # mixer.norm (gated RMSNorm)
            + linear(inner, d, use_bias)  # out_proj
        )
        return ParamCounts(
            embedding=vocab * d,
            position=0,
            layers=(layer,) * int(cfg["num_hidden_layers"]),
            final_norm=d,  # norm_f
            head=head_params(cfg, d, vocab),
        )

    def layer_flops_per_token(self, config: Mapping[str, Any], seq_len: int) -> int:
        """2 * (d (2I + 2GN + H) + I d) projections + 2 C k conv (C = I + 2GN) + 6 I N scan.

        The scan term is the recurrent-equivalent cost per token: per channel and state element,
        the input product dt.B.x, the decayed state update (mul, add) and the read-out C.h (mul, add);
        the per-head decay and O(I) terms (gated norm, D skip) are ignored. Independent of
        ``seq_len`` (the chunked algorithm adds O(chunk_size) per token, not counted).
        """
        cfg = self.full_config(config)
        d, inner, heads, groups, state, kernel = self._sizes(cfg)
        conv_dim = inner + 2 * groups * state
        weights = d * (inner + conv_dim + heads) + inner * d
        return matmul_flops(weights) + 2 * conv_dim * kernel + 6 * inner * state

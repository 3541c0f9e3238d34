"""Mamba (state-spaces/mamba-*-hf): selective SSM mixer, RMSNorm, no attention or positions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..architectures import ARCHITECTURES
from ..family import ParamCounts
from . import BuiltinFamily, ceil_div, head_params, linear, matmul_flops, not_positive, set_unless_given


class Mamba(BuiltinFamily):
    name = "mamba"
    model_types = ("mamba",)
    model_class = "transformers:MambaForCausalLM"
    adapter = "hybridc.components.adapters.mamba:MambaAdapter"
    architecture = ARCHITECTURES["mamba"]
    keys = architecture.keys
    has_attention = False
    # Set by MambaConfig.__post_init__ to expand * hidden_size; an explicit value wins.
    extra_known_keys = frozenset({"intermediate_size"})

    def complete_init_config(self, config: dict[str, Any], common: Mapping[str, Any]) -> dict[str, Any]:
        """``intermediate_size = expand * hidden`` unless given; ``time_step_rank`` stays "auto"
        (= ceil(hidden / 16)) unless given."""
        config = super().complete_init_config(config, common)
        set_unless_given(config, common, "intermediate_size", int(config["expand"] * int(config["hidden_size"])))
        return config

    def config_problems(self, config: Mapping[str, Any]) -> list[str]:
        """What ``MambaConfig`` and the mixer refuse: an expansion, inner width, state, convolution kernel or
        dt rank (when not "auto") below 1."""
        cfg = self.full_config(config)
        problems = not_positive(cfg, "expand", "intermediate_size", "state_size", "conv_kernel")
        if cfg.get("time_step_rank", "auto") != "auto":
            problems += not_positive(cfg, "time_step_rank")
        return problems

    @staticmethod
    def _sizes(cfg: Mapping[str, Any]) -> tuple[int, int, int, int, int]:
        """(d, I, R, N, k): width, inner width, dt rank, state size, conv kernel."""
        d = int(cfg["hidden_size"])
        inner = cfg.get("intermediate_size")
        inner = int(inner) if inner is not None else int(cfg["expand"] * d)
        rank = cfg.get("time_step_rank", "auto")
        rank = ceil_div(d, 16) if rank == "auto" else int(rank)
        return d, inner, rank, int(cfg["state_size"]), int(cfg["conv_kernel"])

    def param_counts(self, config: Mapping[str, Any]) -> ParamCounts:
        cfg = self.full_config(config)
        d, inner, rank, state, kernel = self._sizes(cfg)
        vocab = int(cfg["vocab_size"])
        use_bias = bool(cfg.get("use_bias", False))
        layer = (
            d  # norm (RMSNorm)
            + linear(d, 2 * inner, use_bias)  # in_proj
            + inner * kernel + (inner if cfg.get("use_conv_bias", True) else 0)  # depthwise conv1d
            + linear(inner, rank + 2 * state, bias=False)  # x_proj
            + linear(rank, inner, bias=True)  # dt_proj
            + inner * state  # A_log
            + inner  # D
            + linear(inner, d, use_bias)  # out_proj
        )
        return ParamCounts(
            embedding=vocab * d,
            position=0,
            layers=(layer,) * int(cfg["num_hidden_layers"]),
            final_norm=d,  # norm_f
            head=head_params(cfg, d, vocab),
        )

    def layers_decode_state(self, config: Mapping[str, Any], seq_len: int) -> tuple[int, ...]:
        """Per layer I x k (the convolution's window) + I x N (the scan's state), whatever ``seq_len``."""
        cfg = self.full_config(config)
        _, inner, _, state, kernel = self._sizes(cfg)
        return (inner * kernel + inner * state,) * int(cfg["num_hidden_layers"])

    def layer_flops_per_token(self, config: Mapping[str, Any], seq_len: int) -> int:
        """2 * (2 d I + I (R + 2N) + R I + I d) projections + 2 I k conv + 8 I N scan.

        The scan term counts, per channel and state element, discretising A (mul, exp) and B (mul),
        the input product, the state update (mul, add) and the read-out C.h (mul, add); O(I)
        element-wise terms (softplus, D skip, gate) are ignored. Independent of ``seq_len``.
        """
        cfg = self.full_config(config)
        d, inner, rank, state, kernel = self._sizes(cfg)
        weights = 2 * d * inner + inner * (rank + 2 * state) + rank * inner + inner * d
        return matmul_flops(weights) + 2 * inner * kernel + 8 * inner * state

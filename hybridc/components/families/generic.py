"""Any family of the architecture table (``hybridc.components.architectures``) as a ``Family``.

Shapes and from-scratch configs are read from config dicts (torch-free, like every family). Parameter
counts and FLOPs per token are read off the family's own model built on PyTorch's meta device (no memory,
no weights): exact for any config, at the price of importing torch when a graph is built (``validate``
never asks for them).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from typing import Any

from ..architectures import Architecture
from ..family import ParamCounts, Shape
from . import BuiltinFamily, not_positive, set_unless_given

COUNTS = ("num_key_value_heads", "head_dim")  # sizes every family that has them divides by


class GenericFamily(BuiltinFamily):
    """A family described by one ``Architecture`` entry."""

    measured_on_meta = True

    def __init__(self, architecture: Architecture):
        self.architecture = architecture
        self.name = architecture.name
        self.model_types = (architecture.model_type,)
        self.keys = architecture.keys
        self.model_class = f"transformers:{architecture.model_class}"
        self.adapter = "hybridc.components.adapters.decoder:DecoderAdapter"
        self.has_attention = architecture.attention

    def __repr__(self) -> str:
        return f"GenericFamily({self.name!r})"

    # ---- configs -------------------------------------------------------------------------
    def full_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """``config`` over the defaults; a family whose layer count is the length of its layer-type list
        (Nemotron-H) gets the count filled in."""
        merged = super().full_config(config)
        if merged.get(self.keys.layers) is None:
            for key in ("layers_block_type", "layer_types"):
                if isinstance(merged.get(key), list):
                    merged[self.keys.layers] = len(merged[key])
                    break
        return merged

    def shape(self, config: Mapping[str, Any]) -> Shape:
        """As every family's; a family whose model never ties its head (xLSTM, Nemotron-H) is untied
        whatever ``tie_word_embeddings`` says."""
        shape = super().shape(config)
        if shape.tied_embeddings and not self.architecture.ties:
            shape = dataclasses.replace(shape, tied_embeddings=False)
        return shape

    def complete_init_config(self, config: dict[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
        """Special token ids inside the vocabulary, then the architecture's small-config rules (each
        unless the user gave that key)."""
        config = super().complete_init_config(config, given)
        sizes = _Sizes(
            hidden=int(config[self.keys.hidden]),
            layers=int(config[self.keys.layers]),
            heads=int(config[self.keys.heads]) if self.keys.heads and config.get(self.keys.heads) else 1,
        )
        for key, rule in self.architecture.init.items():
            set_unless_given(config, given, key, sizes.value(rule, config.get(key)))
        return config

    def config_problems(self, config: Mapping[str, Any]) -> list[str]:
        """Sizes the family's layers cannot be built with (``Architecture.multiple_of``), and counts that divide
        in every family that has them (key-value heads, head widths, layer periods) below 1. Anything else
        the family's config class or layers refuse is found when its model is built (on the meta device, at
        ``compile``) and located there (``components.build_errors``)."""
        cfg = self.full_config(config)
        problems = not_positive(cfg, *(k for k in cfg if k.endswith("_period") or k in COUNTS))
        for factors, multiple in self.architecture.multiple_of:
            values = []
            for factor in factors:
                if factor == "hidden/heads":
                    heads = cfg.get(self.keys.heads) if self.keys.heads else None
                    values.append(cfg[self.keys.hidden] / heads if isinstance(heads, int) and heads else None)
                else:
                    values.append(_config_value(cfg, factor))
            if any(not isinstance(v, (int, float)) or isinstance(v, bool) for v in values):
                continue  # the shape checks say what is wrong with these
            product = math.prod(values)
            if abs(product - round(product)) > 1e-9 or round(product) % multiple:
                shown = " * ".join(f"{f.partition('=')[0].rpartition('.')[2]} ({v:g})" for f, v in zip(factors, values))
                problems.append(f"{shown} = {product:g} must be a multiple of {multiple} for {self.name}'s layers")
        return problems

    # ---- cost ----------------------------------------------------------------------------
    def param_counts(self, config: Mapping[str, Any]) -> ParamCounts:
        from ..meta_cost import measure

        return measure(self, _frozen(self.full_config(config)), 0).params

    def layer_flops_per_token(self, config: Mapping[str, Any], seq_len: int) -> int:
        """Forward FLOPs per token of the family's most expensive layer at context ``seq_len`` (see
        ``hybridc.components.meta_cost``); ``layers_flops_per_token`` gives each layer's."""
        return max(self.layers_flops_per_token(config, seq_len))

    def layers_flops_per_token(self, config: Mapping[str, Any], seq_len: int) -> tuple[int, ...]:
        from ..meta_cost import measure

        return measure(self, _frozen(self.full_config(config)), seq_len).layer_flops

    def layers_decode_state(self, config: Mapping[str, Any], seq_len: int) -> tuple[int | None, ...]:
        """Measured from transformers' own cache after a prefill on the meta device
        (``hybridc.components.meta_cost.measure_state``)."""
        from ..meta_cost import measure_state

        return measure_state(self, _frozen(self.full_config(config)), seq_len)


def _config_value(cfg: Mapping[str, Any], factor: str) -> Any:
    """``key``, or ``key.sub=default``: ``cfg[key][sub]``, the default when it is absent."""
    path, _, default = factor.partition("=")
    value: Any = cfg
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return float(default) if value is None and default else value


def _frozen(config: Mapping[str, Any]) -> str:
    """A config as a hashable key (sorted JSON)."""
    return json.dumps(config, sort_keys=True, default=str)


class _Sizes:
    """Evaluates the small-config rules of ``Architecture.init``."""

    def __init__(self, hidden: int, layers: int, heads: int):
        self.hidden, self.layers, self.heads = hidden, layers, heads

    def value(self, rule: Any, current: Any) -> Any:
        if not isinstance(rule, str):
            return rule
        d, n, h = self.hidden, self.layers, self.heads
        simple = {
            "ffn": 4 * d,
            "same": d,
            "double": 2 * d,
            "half": max(1, d // 2),
            "heads": h,
            "double_heads": 2 * h,
            "head_dim": max(1, d // h),
            "double_head_dim": max(1, 2 * d // h),
            "sixteenth": math.ceil(d / 16),
            "every_second": list(range(1, n, 2)),
        }
        if rule in simple:
            return simple[rule]
        if rule == "layer_types":  # the default pattern, cut or repeated to n layers
            if not isinstance(current, list) or not current:
                return current
            return [current[i % len(current)] for i in range(n)]
        if rule.startswith("cycle:"):  # a pattern of layer kinds, repeated to n layers
            kinds = rule.removeprefix("cycle:").split(",")
            return [kinds[i % len(kinds)] for i in range(n)]
        if rule == "zamba_layers":  # Zamba2: mamba layers with a shared-attention hybrid layer every third
            return ["hybrid" if i % 3 == 2 else "mamba" for i in range(n)]
        raise ValueError(f"unknown small-config rule {rule!r}")

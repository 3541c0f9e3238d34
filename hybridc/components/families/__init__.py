"""Built-in family descriptors (torch-free) and the helpers they share.

Every module in this package must stay importable without torch or transformers: the front end
resolves shapes, parameter counts and FLOPs from config dicts alone. The torch side of each family
lives in :mod:`hybridc.components.adapters`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

from ..family import Family

SPECIAL_TOKEN_KEYS = ("bos_token_id", "eos_token_id", "pad_token_id")


class BuiltinFamily(Family):
    """A built-in family: knows extra config keys and keeps special token ids inside tiny vocabularies."""

    # Keys a config.json may carry that the config class accepts but that are not dataclass
    # fields (legacy aliases, values derived in ``__post_init__``).
    extra_known_keys: ClassVar[frozenset[str]] = frozenset()

    def known_keys(self) -> frozenset[str]:
        return super().known_keys() | self.extra_known_keys

    def complete_init_config(self, config: dict[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
        """Make a from-scratch config consistent; keys in ``given`` (the user's) are kept."""
        return special_tokens_inside_vocab(config, given, int(config[self.keys.vocab]))


# ---- config helpers ---------------------------------------------------------------------------


def special_tokens_inside_vocab(config: dict[str, Any], given: Mapping[str, Any], vocab: int) -> dict[str, Any]:
    """Move default bos/eos/pad ids that fall outside a small vocabulary to its last id."""
    for key in SPECIAL_TOKEN_KEYS:
        if key in given:
            continue
        value = config.get(key)
        if isinstance(value, int) and value >= vocab:
            config[key] = vocab - 1
        elif isinstance(value, list):
            config[key] = [v if v < vocab else vocab - 1 for v in value]
    return config


def set_unless_given(config: dict[str, Any], given: Mapping[str, Any], key: str, value: Any) -> None:
    if key not in given:
        config[key] = value


def not_positive(cfg: Mapping[str, Any], *keys: str) -> list[str]:
    """Problems of ``keys`` of ``cfg`` that are given (not None) but not whole numbers >= 1 (sizes the family's
    config class or layers refuse: a division by them, a convolution of that many groups)."""
    problems = []
    for key in keys:
        value = cfg.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            problems.append(f"{key} is {value!r}; it must be a whole number >= 1")
    return problems


def divides(cfg: Mapping[str, Any], part: str, whole: str, what: str) -> list[str]:
    """A problem when ``cfg[part]`` (a size >= 1) does not divide ``cfg[whole]``: ``what`` says why it must."""
    a, b = cfg.get(part), cfg.get(whole)
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in (a, b)) or b % a == 0:
        return []
    return [f"{part} ({a}) must divide {whole} ({b}): {what}"]


# ---- counting helpers ---------------------------------------------------------------------------


def linear(n_in: int, n_out: int, bias: bool) -> int:
    """Parameters of ``nn.Linear(n_in, n_out, bias)`` (or GPT-2's ``Conv1D``)."""
    return n_in * n_out + (n_out if bias else 0)


def layer_norm(d: int, bias: bool = True) -> int:
    return 2 * d if bias else d


def head_params(cfg: Mapping[str, Any], hidden: int, vocab: int) -> int:
    """The LM head's own parameters: 0 when tied to the token embedding."""
    return 0 if cfg.get("tie_word_embeddings", True) else hidden * vocab


def matmul_flops(weights: int) -> int:
    """Forward FLOPs per token of matmuls with ``weights`` multiply-add weights (2 per weight)."""
    return 2 * weights


def kv_cache(seq_len: int, kv_dim: int) -> int:
    """Numbers an attention layer caches per sequence after ``seq_len`` tokens: keys and values, ``kv_dim``
    each per token (heads x head width; key-value heads x head width under grouped-query attention)."""
    return 2 * seq_len * kv_dim


def attention_flops(seq_len: int, attn_dim: int) -> int:
    """Scores (QK^T) plus weighted values (AV) per token: 2 * 2 * seq_len * attn_dim.

    Counts the full T x T score matrix (no halving for the causal mask), as in Kaplan et al.
    """
    return 2 * 2 * seq_len * attn_dim


def ceil_div(a: int, b: int) -> int:
    return math.ceil(a / b)


__all__ = [
    "BuiltinFamily",
    "attention_flops",
    "ceil_div",
    "divides",
    "head_params",
    "layer_norm",
    "linear",
    "matmul_flops",
    "not_positive",
    "set_unless_given",
    "special_tokens_inside_vocab",
]

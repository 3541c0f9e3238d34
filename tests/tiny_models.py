"""Tiny from-scratch configs of every built-in family, shared by the test suite."""

from __future__ import annotations

from typing import Any

from hybridc.components.registry import get_family

COMMON_KEYS = ("hidden_size", "layers", "heads", "vocab_size", "max_length")

TINY_COMMON: dict[str, Any] = {"hidden_size": 32, "layers": 3, "heads": 4, "vocab_size": 96, "max_length": 64}


def tiny_config(family_name: str, **overrides: Any) -> dict[str, Any]:
    """A config.json dict of a tiny model (hidden 32, 3 layers, 4 heads, vocab 96, 64 positions).

    Overrides named like a common key (hidden_size, layers, heads, vocab_size, max_length) change
    the common keys; any other override is a family-specific config key.
    """
    family = get_family(family_name)
    if family is None:
        raise KeyError(family_name)
    common = dict(TINY_COMMON)
    extra: dict[str, Any] = {}
    for key, value in overrides.items():
        (common if key in COMMON_KEYS else extra)[key] = value
    return family.init_config(common, extra)

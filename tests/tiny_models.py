"""Tiny from-scratch configs of every built-in family, shared by the test suite."""

from __future__ import annotations

from typing import Any

from hybridc.components.registry import families, get_family

COMMON_KEYS = ("hidden_size", "layers", "heads", "vocab_size", "max_length")

TINY_COMMON: dict[str, Any] = {"hidden_size": 32, "layers": 3, "heads": 4, "vocab_size": 96, "max_length": 64}

# The families with hand-written cost formulas and their own adapter tests in depth.
CORE_FAMILIES = ("gpt-neo", "gpt2", "gpt-neox", "llama", "mamba", "mamba2")
# Every family of the architecture table (tests/components/test_conformance.py runs each).
ALL_FAMILIES = tuple(sorted(families()))
# One family of each kind the generic adapter meets, for the tests that go deep on every path: rotary per
# layer type and logit soft-capping (gemma3), multipliers and parallel attention + Mamba-2 (falcon-h1),
# shared blocks reading the embeddings (zamba2), states in the modules (recurrent-gemma), short convolutions
# (lfm2), a state threaded through the loop (rwkv, xlstm); the common layout is Llama's.
REPRESENTATIVE_FAMILIES = CORE_FAMILIES + (
    "gemma3", "falcon-h1", "zamba2", "recurrent-gemma", "lfm2", "rwkv", "xlstm")

# Families whose tiny models need other sizes: xLSTM rounds its head widths up to multiples of 64, so its
# width must make hidden_size * 0.5 a multiple of 64; states and experts smaller than the real models'.
TINY_OVERRIDES: dict[str, dict[str, Any]] = {
    "xlstm": {"hidden_size": 128},
    "falcon-h1": {"mamba_d_state": 16, "mamba_chunk_size": 16},
    "bamba": {"mamba_d_state": 16, "mamba_chunk_size": 16},
    "granitemoehybrid": {"mamba_d_state": 16, "mamba_chunk_size": 16},
    "nemotron-h": {"ssm_state_size": 16, "chunk_size": 16, "n_routed_experts": 4},
    "zamba2": {"mamba_d_state": 16, "chunk_size": 16},
    "jamba": {"num_experts": 4},
}


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
    for key, value in {**TINY_OVERRIDES.get(family.name, {}), **overrides}.items():
        (common if key in COMMON_KEYS else extra)[key] = value
    return family.init_config(common, extra)

"""Tiny from-scratch configs of every built-in family, shared by the test suite (``hybridc.testing.tiny``)."""

from __future__ import annotations

from hybridc.components.registry import families
from hybridc.testing.tiny import COMMON_KEYS, TINY_COMMON, TINY_OVERRIDES, tiny_config

__all__ = ["ALL_FAMILIES", "COMMON_KEYS", "CORE_FAMILIES", "REPRESENTATIVE_FAMILIES", "TINY_COMMON", "TINY_OVERRIDES",
           "tiny_config"]

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

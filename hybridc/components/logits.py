"""What a family's ``*ForCausalLM`` does to its head's output, as (kind, value) pairs (torch)."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def apply_logit_ops(logits: torch.Tensor, ops: Sequence[tuple[str, float]]) -> torch.Tensor:
    """A family's transforms of its head's output (B, T, V)."""
    for kind, value in ops:
        if kind == "softcap":
            logits = torch.tanh(logits / value) * value
        elif kind == "scale":
            logits = logits * value
        elif kind == "divide":
            logits = logits / value
        else:
            raise ValueError(f"unknown logit transform {kind!r}")
    return logits

"""Mixture weights of one block: a point alpha of the simplex over the M components.

``search``: learned logits, alpha = softmax(logits) (DARTS); training may switch the block to
Gumbel-softmax sampling (DASH) or to weights kept directly on the simplex (GAEA).
``fixed``: a constant alpha (a buffer: saved, never trained).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class Mix(nn.Module):
    """forward() -> alpha (M,) on the simplex."""

    def __init__(self, num_components: int, learned: bool, alphas: Sequence[float] | None = None):
        super().__init__()
        self.learned = learned
        if learned:
            self.logits = nn.Parameter(torch.zeros(num_components))
        else:
            if alphas is None:
                raise ValueError("a fixed mixture needs its alphas")
            self.register_buffer("weights", torch.tensor([float(a) for a in alphas]))

    def forward(self) -> torch.Tensor:
        if self.learned:
            return torch.softmax(self.logits, dim=-1)
        return self.weights

    def constant_zeros(self) -> list[bool]:
        """Components whose weight is a constant zero (their branch can be skipped exactly)."""
        if self.learned:
            return [False] * self.logits.numel()
        return (self.weights == 0).tolist()

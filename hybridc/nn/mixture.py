"""Mixture weights of one block: a point alpha of the simplex over the M components.

``search``: learned logits, alpha = softmax(logits) (DARTS). During a search stage the trainer may
switch a block to Gumbel-softmax samples (DASH: ``gumbel_tau``, training mode only) or hand it the
simplex weights as a leaf tensor for one step (GAEA: ``leaf``, updated by exponentiated gradient).
``fixed``: a constant alpha (a buffer: saved, never trained).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class Mix(nn.Module):
    """forward() -> alpha (M,) on the simplex."""

    def __init__(self, num_components: int, learned: bool, alphas: Sequence[float] | None = None):
        super().__init__()
        self.learned = learned
        self.gumbel_tau: float | None = None
        self.leaf: torch.Tensor | None = None
        if learned:
            self.logits = nn.Parameter(torch.zeros(num_components))
        else:
            if alphas is None:
                raise ValueError("a fixed mixture needs its alphas")
            self.register_buffer("weights", torch.tensor([float(a) for a in alphas]))
        # read on every forward: kept as Python values (no comparison and host copy per step)
        self._zeros = (False,) * num_components if learned else tuple(float(a) == 0 for a in alphas)

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        if not self.learned and not self.weights.is_meta:
            self._zeros = tuple((self.weights == 0).tolist())

    def alpha(self) -> torch.Tensor:
        """The block's mixture weights as the model holds them (M,): the fixed weights, or softmax of the
        logits. What is reported and discretized, never a Gumbel draw (``forward`` may sample one)."""
        return self.weights if not self.learned else torch.softmax(self.logits, dim=-1)

    def forward(self) -> torch.Tensor:
        """The weights this forward pass mixes with (M,): ``alpha()``, or during DASH search in training mode
        one Gumbel-softmax draw, or GAEA's leaf for one step."""
        if not self.learned:
            return self.weights
        if self.leaf is not None:
            return self.leaf
        if self.gumbel_tau is not None and self.training:
            return F.gumbel_softmax(self.logits, tau=self.gumbel_tau)
        return torch.softmax(self.logits, dim=-1)

    def constant_zeros(self) -> list[bool]:
        """Components whose weight is a constant zero (their branch can be skipped exactly)."""
        return list(self._zeros)

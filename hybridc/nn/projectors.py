"""Projectors between the shared width d and a component's width d_m.

Kinds (DESIGN section 1): ``linear`` (identity init), ``linear-skip`` (fit(x) + W x, W zero-init),
``mlp`` (Linear-GELU-Linear, PyTorch default init), ``mlp-skip`` (fit(x) + mlp(x)), ``none``
(fit only). ``fit`` zero-pads or truncates the last dimension.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..graph.cost import mlp_hidden


def fit(x: torch.Tensor, width: int) -> torch.Tensor:
    """Zero-pad or truncate the last dimension to ``width``: (..., d_in) -> (..., width)."""
    d = x.shape[-1]
    if d == width:
        return x
    if d > width:
        return x[..., :width]
    return F.pad(x, (0, width - d))


class Projector(nn.Module):
    """(B, T, d_in) -> (B, T, d_out)."""

    def __init__(self, kind: str, d_in: int, d_out: int):
        super().__init__()
        self.kind, self.d_in, self.d_out = kind, d_in, d_out
        self.net: nn.Module | None
        if kind == "none":
            self.net = None
        elif kind in ("linear", "linear-skip"):
            self.net = nn.Linear(d_in, d_out)
            with torch.no_grad():
                self.net.bias.zero_()
                if kind == "linear":
                    self.net.weight.copy_(torch.eye(d_out, d_in))
                else:
                    self.net.weight.zero_()
        elif kind in ("mlp", "mlp-skip"):
            hidden = mlp_hidden(d_in, d_out)
            self.net = nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, d_out))
        else:
            raise ValueError(f"unknown projector kind {kind!r}")
        self.skip = kind.endswith("-skip")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.net is None:
            return fit(x, self.d_out)
        if isinstance(self.net, nn.Linear):  # no nested module call: projectors sit on the decode hot path
            y = F.linear(x, self.net.weight, self.net.bias)
        else:
            y = self.net(x)
        return fit(x, self.d_out) + y if self.skip else y

    def extra_repr(self) -> str:
        return f"{self.kind}, {self.d_in} -> {self.d_out}"

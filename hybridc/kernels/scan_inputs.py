"""What every scan backend does before its recurrence: pick the compute dtype, answer an empty sequence."""

from __future__ import annotations

import torch


def compute_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """float32, or float64 when any input is float64 (half-precision inputs compute in float32)."""
    dtype = torch.float32
    for x in tensors:
        dtype = torch.promote_types(dtype, x.dtype)
    return dtype


def empty_scan(u: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, h0: torch.Tensor | None,
               dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """A scan over T = 0 tokens: the empty output (b, d, 0) and the last state, which is h_{-1} (a copy, no
    gradient) or zeros (b, d, N)."""
    y = (u * dt).to(dtype)
    last = h0.detach().clone() if h0 is not None else u.new_zeros(u.shape[0], u.shape[1], A.shape[1], dtype=dtype)
    return y, last

"""The fused gated mixture: exactly the formula, and its hand-written backward agrees with autograd."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridc.nn.blocks import gated_sum


@settings(max_examples=40, deadline=None)
@given(a=st.floats(0.0, 1.0), with_out=st.booleans(), seed=st.integers(0, 1000))
def test_gated_sum_is_the_formula_with_its_gradients(a, with_out, seed):
    g = torch.Generator().manual_seed(seed)
    make = lambda: torch.randn(2, 3, 5, generator=g, dtype=torch.float64, requires_grad=True)  # noqa: E731
    out, y, z = make(), make(), make()
    alpha = torch.tensor(a, dtype=torch.float64, requires_grad=True)
    fused = gated_sum(out if with_out else None, y, z, alpha)
    plain = (out if with_out else 0) + alpha * ((1 - alpha) * y + alpha * z)
    assert torch.allclose(fused, plain)
    weights = torch.randn(2, 3, 5, generator=g, dtype=torch.float64)
    inputs = [out, y, z, alpha] if with_out else [y, z, alpha]
    got = torch.autograd.grad((fused * weights).sum(), inputs)
    want = torch.autograd.grad((plain * weights).sum(), inputs)
    assert all(torch.allclose(a_, b_) for a_, b_ in zip(got, want))


def test_gated_sum_gradcheck():
    g = torch.Generator().manual_seed(0)
    tensors = [torch.randn(2, 4, 3, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3)]
    alpha = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(gated_sum, (*tensors, alpha))

"""The fused gated mixture and the mixed linear heads: exactly the formula, gradients included."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridc.nn.blocks import MixedLMHead, gated_sum
from hybridc.nn.projectors import fit


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


@settings(max_examples=40, deadline=None)
@given(
    widths=st.lists(st.integers(1, 7), min_size=2, max_size=3),
    extra_rows=st.data(),
    bias=st.booleans(),
    skip_first=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_mixed_linear_heads_are_the_weighted_sum_of_the_heads_logits(widths, extra_rows, bias, skip_first, seed):
    """The linear-head fast path (alphas scale the inputs, products added in place) against the formula
    written out: logits = sum_m a_m head_m(trunc_m(h))[..., :V], values and every gradient, with heads
    wider than the vocabulary (rows cut), biases, and a skipped constant-zero head."""
    g = torch.Generator().manual_seed(seed)
    V, d = 6, max(widths)
    rows = [V + extra_rows.draw(st.integers(0, 3)) for _ in widths]
    rows[extra_rows.draw(st.integers(0, len(widths) - 1))] = V  # the tokenizer's vocabulary is one head's
    heads = {f"c{i}": torch.nn.Linear(w, r, bias=bias).double() for i, (w, r) in enumerate(zip(widths, rows))}
    head = MixedLMHead(heads, {f"c{i}": w for i, w in enumerate(widths)}, V)
    h = torch.randn(2, 3, d, generator=g, dtype=torch.float64, requires_grad=True)
    alphas = torch.rand(len(widths), generator=g, dtype=torch.float64).requires_grad_()
    skip = [skip_first] + [False] * (len(widths) - 1)
    got = head(h, alphas, skip)
    want = sum(alphas[i] * heads[f"c{i}"](fit(h, w))[..., :V] for i, w in enumerate(widths) if not skip[i])
    assert got.shape == (2, 3, V) and torch.allclose(got, want)
    weights = torch.randn(2, 3, V, generator=g, dtype=torch.float64)
    params = [h, alphas, *(p for m in heads.values() for p in m.parameters())]
    for a_, b_ in zip(torch.autograd.grad((got * weights).sum(), params, allow_unused=True),
                      torch.autograd.grad((want * weights).sum(), params, allow_unused=True)):
        assert (a_ is None and b_ is None) or torch.allclose(a_, b_)

"""hybridc's CPU kernels as PyTorch custom operators: ``torch.library.opcheck`` (schema, fake implementation
against the real one, autograd registration, AOT dispatch) for every optional input, and ``torch.export`` of a
hybrid whose Mamba segments run them (the exported program's logits are eager's)."""

from __future__ import annotations

import pytest
import torch

from hybridc.kernels import library as kernels
from hybridc.models.hybrid import lower
from hybridc.spec import load_spec
from tests.specs import SMALL, write_spec

pytestmark = pytest.mark.skipif(not kernels.available(), reason="hybridc's CPU kernels do not build here")


def scan_inputs(seed: int = 0, b: int = 2, d: int = 66, T: int = 20, N: int = 2):
    g = torch.Generator().manual_seed(seed)
    f = {"generator": g, "dtype": torch.float64}
    u, delta = (torch.randn(b, d, T, **f) for _ in range(2))
    B, C = (torch.randn(b, N, T, **f) for _ in range(2))
    A = -torch.rand(d, N, **f)
    h0 = torch.randn(b, d, N, **f)
    D, bias = torch.randn(d, **f), torch.randn(d, **f)
    wide = torch.randn(b, T, d + 3, **f)
    return u, delta, A, B, C, h0, D, wide[..., 3:].transpose(1, 2), bias  # z: a strided slice, as the gate is


@pytest.mark.parametrize("given", ["all", "none", "state and gate"])
def test_the_scan_operator_passes_opcheck(given):
    u, delta, A, B, C, h0, D, z, bias = (x.requires_grad_() for x in scan_inputs())
    keep = {"all": (h0, D, z, bias), "none": (None,) * 4, "state and gate": (h0, None, z, None)}[given]
    result = torch.library.opcheck(torch.ops.hybridc.selective_scan.default,
                                   (u, delta, A, B, C, *keep, given == "all", True))
    assert set(result.values()) == {"SUCCESS"}


@pytest.mark.parametrize("bias", [True, False])
def test_the_conv_operator_passes_opcheck(bias):
    g = torch.Generator().manual_seed(1)
    wide = torch.randn(2, 9, 70, generator=g, dtype=torch.float64)
    x = wide[..., :66].detach().requires_grad_()  # a slice of a wider token-major tensor, as in_proj's output
    weight = torch.randn(66, 4, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(66, generator=g, dtype=torch.float64, requires_grad=True) if bias else None
    result = torch.library.opcheck(torch.ops.hybridc.causal_conv1d_silu.default, (x, weight, b))
    assert set(result.values()) == {"SUCCESS"}


@pytest.mark.parametrize("selection", [None, ["attn", "ssm"]])
def test_torch_export_of_a_hybrid_gives_eager_s_logits(tmp_path, selection):
    from hybridc.models.export import discretize_model

    model = lower(load_spec(write_spec(tmp_path, SMALL)), pretrained=False).eval()
    if selection is not None:
        model = discretize_model(model, selection).eval()
    ids = torch.randint(0, 64, (2, 12), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, :3] = 0
    with torch.no_grad():
        eager = model(ids, attention_mask=mask).logits
    program = torch.export.export(model, (ids,), {"attention_mask": mask})
    assert "hybridc.selective_scan" in str(program.graph) and "hybridc.causal_conv1d_silu" in str(program.graph)
    assert (program.module()(ids, attention_mask=mask).logits - eager).abs().max().item() <= 1e-5

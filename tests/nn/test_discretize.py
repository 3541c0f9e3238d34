"""The discretized model: exactly the selected segments, smaller, and the same function as the
continuous hybrid at one-hot alphas when its projectors are freshly initialised identities."""

from __future__ import annotations

import pytest
import torch

from hybridc.nn.blocks import SingleBlock
from hybridc.models.hybrid import lower
from hybridc.spec import load_spec
from tests.specs import SMALL, write_spec

SELECTIONS = [["attn", "attn"], ["ssm", "ssm"], ["attn", "ssm"], ["ssm", "attn"]]


@pytest.fixture
def rs(tmp_path):
    return load_spec(write_spec(tmp_path, SMALL.replace("{attn: linear, ssm: mlp}", "linear")))


@pytest.mark.parametrize("selection", SELECTIONS, ids="-".join)
def test_discretized_model_runs_exactly_the_selection(rs, selection):
    model = lower(rs, selection=selection)
    assert all(isinstance(b, SingleBlock) for b in model.blocks)
    assert [list(b.segments) for b in model.blocks] == [[m] for m in selection]
    assert sum(p.numel() for p in model.parameters()) == model.graph.total_params
    assert model.alphas().tolist() == [[1.0 if m == s else 0.0 for m in ("attn", "ssm")] for s in selection]


@pytest.mark.parametrize("selection", SELECTIONS, ids="-".join)
def test_discretized_equals_one_hot_continuous(rs, tmp_path, selection):
    rows = ", ".join("[1.0, 0.0]" if s == "attn" else "[0.0, 1.0]" for s in selection)
    text = SMALL.replace("{attn: linear, ssm: mlp}", "linear").replace("fixed([[0.5, 0.5], [0.25, 0.75]])",
                                                                          f"fixed([{rows}])")
    continuous = lower(load_spec(write_spec(tmp_path, text, "one-hot.yaml"))).eval()
    discrete = lower(rs, selection=selection).eval()
    ids = torch.randint(0, 64, (2, 10), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert (continuous(ids).logits - discrete(ids).logits).abs().max().item() <= 1e-5


def test_discretized_model_saves_and_reloads(rs, tmp_path):
    from hybridc.models.hybrid import HybridModel

    model = lower(rs, selection=["ssm", "attn"]).eval()
    model.save_pretrained(tmp_path / "d")
    again = HybridModel.from_pretrained(tmp_path / "d").eval()
    assert again.graph.selection == ("ssm", "attn")
    ids = torch.randint(0, 64, (1, 8))
    with torch.no_grad():
        assert torch.equal(model(ids).logits, again(ids).logits)

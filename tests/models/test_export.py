"""`hybridc discretize`: the pruned hybrid, or the plain component when one component is left."""

from __future__ import annotations

import torch
from click.testing import CliRunner
from transformers import AutoModelForCausalLM

from hybridc.cli import main
from hybridc.models.export import discretize_model, export, single_component
from hybridc.models.hybrid import HybridModel, lower
from hybridc.spec import load_spec
from tests.specs import SMALL, write_spec

ONE_HOT = SMALL.replace("fixed([[0.5, 0.5], [0.25, 0.75]])", "fixed([[0.1, 0.9], [0.3, 0.7]])").replace(
    "{attn: linear, ssm: mlp}", "linear").replace("name: small\n", "name: small\ntokenizer: ssm\n").replace(
    "hidden_size: 24", "hidden_size: 32")


def ids():
    return torch.randint(0, 64, (2, 12), generator=torch.Generator().manual_seed(5))


def test_one_component_everywhere_exports_the_plain_model(tmp_path):
    model = lower(load_spec(write_spec(tmp_path, ONE_HOT))).eval()
    small = discretize_model(model)
    assert small.graph.selection == ("ssm", "ssm") and single_component(small) == "ssm"
    result = export(model, tmp_path / "out")
    assert result.kind == "mamba" and result.selection == ("ssm", "ssm")
    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "out").eval()
    assert type(plain).__name__ == "MambaForCausalLM"
    with torch.no_grad():
        assert (plain(ids()).logits - small.eval()(ids()).logits).abs().max().item() <= 1e-5


def test_a_mixed_selection_exports_a_hybrid(tmp_path):
    model = lower(load_spec(write_spec(tmp_path, SMALL))).eval()  # alphas [0.5, 0.5], [0.25, 0.75]
    result = export(model, tmp_path / "out")
    assert result.kind == "hybrid" and result.selection == ("attn", "ssm")
    again = HybridModel.from_pretrained(tmp_path / "out").eval()
    small = discretize_model(model).eval()
    assert again.graph.selection == ("attn", "ssm")
    assert sum(p.numel() for p in again.parameters()) == again.graph.total_params < model.graph.total_params
    with torch.no_grad():
        assert torch.equal(again(ids()).logits, small(ids()).logits)


def test_discretize_command_on_a_saved_hybrid(tmp_path):
    lower(load_spec(write_spec(tmp_path, ONE_HOT))).save_pretrained(tmp_path / "saved")
    result = CliRunner().invoke(main, ["discretize", str(tmp_path / "saved"), "-o", str(tmp_path / "plain")])
    assert result.exit_code == 0, result.output
    assert "exported as a plain mamba model" in result.output
    assert (tmp_path / "plain" / "model.safetensors").exists()
    bad = CliRunner().invoke(main, ["discretize", str(tmp_path)])
    assert bad.exit_code == 1 and "config.json missing" in bad.output


def test_discretize_never_deletes_a_directory_it_did_not_write(tmp_path):
    lower(load_spec(write_spec(tmp_path, SMALL))).save_pretrained(tmp_path / "saved")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my work")
    refused = CliRunner().invoke(main, ["discretize", str(tmp_path / "saved"), "-o", str(mine)])
    assert refused.exit_code == 1 and "does not hold a model written by hybridc" in refused.output
    assert (mine / "notes.txt").read_text() == "my work"
    for _ in range(2):  # an earlier export is replaced
        again = CliRunner().invoke(main, ["discretize", str(tmp_path / "saved"), "-o", str(tmp_path / "out")])
        assert again.exit_code == 0, again.output

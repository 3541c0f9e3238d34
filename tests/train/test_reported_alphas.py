"""The alphas a run reports are the model's: softmax of the final logits, never one Gumbel draw.

Under DASH the forward pass mixes with Gumbel-softmax samples during search; what ``metrics.jsonl``,
``alphas.png``, the model card, ``hybridc mad``/``program`` and ``sweep --search`` read must still be
softmax(logits) (a draw at tau = 1 is spread over the whole simplex whatever the logits say)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from hybridc.experiments.common import final_alphas
from tests.train.helpers import DATA, run, spec_text


def softmax_of_saved_logits(final_dir) -> list[list[float]]:
    weights = load_file(str(final_dir / "model.safetensors"))
    rows = [weights[f"blocks.{b}.mix.logits"] for b in range(2)]
    return [torch.softmax(row.double(), -1).tolist() for row in rows]


def flat(rows: list[list[float]]) -> list[float]:
    return [a for row in rows for a in row]


@pytest.mark.parametrize("search", ["dash(lr=0.5, tau=1.0)", "darts(lr=0.5)", "gaea(lr=0.5)"])
def test_recorded_alphas_are_the_softmax_of_the_final_logits(tmp_path, search):
    result, _ = run(tmp_path, spec_text(f"- {{name: search, search: '{search}', data: '{DATA}', steps: 6, "
                                        "batch_size: 8}"))
    expected = softmax_of_saved_logits(result.final_dir)
    assert any(abs(a - 1 / 2) > 1e-3 for row in expected for a in row), "the search moved the alphas"
    recorded = final_alphas(result.run_dir)
    assert flat(recorded) == pytest.approx(flat(expected), abs=1e-6)  # (metrics.jsonl rounds to 6 places)
    steps = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [e for e in steps if e.get("event") == "train"]
    for event in steps:  # every step's alphas: on the simplex and a pure function of the logits then
        assert all(abs(sum(row) - 1) < 1e-5 for row in event["alphas"])
    card = (result.final_dir / "README.md").read_text()
    shown = "; ".join(", ".join(f"{a:.3f}" for a in row) for row in expected)
    assert shown in card


def test_dash_reports_the_same_alphas_in_training_and_in_eval_mode(tmp_path):
    """The draw is what the forward pass mixes with in training mode; alphas() does not depend on the mode."""
    from hybridc.models.hybrid import HybridModel

    result, _ = run(tmp_path, spec_text(f"- {{name: search, search: 'dash(lr=0.5)', data: '{DATA}', steps: 4, "
                                        "batch_size: 8}"))
    model = HybridModel.from_pretrained(result.final_dir)
    for block in model.blocks:
        block.mix.gumbel_tau = 1.0  # as during a DASH search stage
    model.train()
    torch.manual_seed(0)
    draws = {tuple(model.blocks[0].mix().tolist()) for _ in range(5)}
    assert len(draws) == 5, "in training mode the forward pass draws"
    assert torch.equal(model.alphas(), model.eval().alphas())
    assert flat(model.alphas().tolist()) == pytest.approx(flat(softmax_of_saved_logits(result.final_dir)), abs=1e-6)

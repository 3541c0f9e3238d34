"""A non-finite loss names where it came from: the parameters that went bad, else the part of the hybrid
whose output first went non-finite while every parameter is finite (an activation overflowed)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from hybridc.errors import RunError
from hybridc.models.hybrid import lower
from hybridc.spec.model import Distill
from hybridc.train.loop import build_optimizers, freeze_for, train_steps
from tests.train.helpers import DATA
from tests.train.test_stages import stage_setup, take_steps

STAGE = f"- {{name: finetune, data: '{DATA}', steps: 2, lr: 1e-30}}"
FIXED = "fixed([[0.5, 0.5], [0.5, 0.5]])"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return stage_setup(tmp_path_factory.mktemp("nonfinite"), STAGE, FIXED)


def failure(setup, edit, *, finite_parameters: bool) -> str:
    rs, stage, data = setup
    model = lower(rs)
    with torch.no_grad():
        edit(model)
    assert all(torch.isfinite(p).all() for p in model.parameters()) == finite_parameters
    with pytest.raises(RunError) as info:
        take_steps(model, stage, data, 2)
    return str(info.value)


def test_a_non_finite_parameter_is_named_with_its_group(setup):
    message = failure(setup, lambda m: m.embed.sources["attn"].weight.fill_(math.inf), finite_parameters=False)
    assert message == "stage 'finetune' step 1: the loss is nan (non-finite values in: embeddings (embed.sources.attn.weight))"


def test_an_overflowing_projector_is_named_when_every_parameter_is_finite(setup):
    def edit(m):  # finite weights whose product overflows float32: block 0's output is ~1e21, block 1's input x1e20
        m.blocks[0].projector_out["attn"].net.weight.fill_(1e20)
        m.blocks[1].projector_in["attn"].net.weight.fill_(1e20)

    message = failure(setup, edit, finite_parameters=True)
    assert message == ("stage 'finetune' step 1: the loss is nan (every parameter is finite; the forward first went "
                       "non-finite in the projector into 'attn' in block 1)")


def test_an_overflow_inside_a_component_names_its_block_and_layer(setup):
    # block 0's attn output x1e30 (finite): block 1's first layer norm squares it past float32's range
    message = failure(setup, lambda m: m.blocks[0].projector_out["attn"].net.weight.fill_(1e30), finite_parameters=True)
    assert message == ("stage 'finetune' step 1: the loss is nan (every parameter is finite; the forward first went "
                       "non-finite in component 'attn' in block 1 (layers 1..2), layer 1 (input_layernorm))")


def test_every_part_of_a_hybrid_has_a_name(setup):
    from hybridc.train.nonfinite import place_of

    model = lower(setup[0])
    names = {name for name, _ in model.named_modules() if name}
    expected = {
        "embed": "the embedding",
        "embed.sources.ssm": "the embedding of 'ssm'",
        "blocks.0": "block 0 (the sum of its branches)",
        "blocks.1.mix": "the mixture weights of block 1",
        "blocks.0.projector_in.ssm": "the projector into 'ssm' in block 0",
        "blocks.1.projector_out.attn": "the projector out of 'attn' in block 1",
        "blocks.0.segments.ssm": "component 'ssm' in block 0 (layers 0..1)",
        "blocks.1.segments.ssm.layers.0.mixer": "component 'ssm' in block 1 (layers 1..2), layer 1 (mixer)",
        "blocks.1.segments.ssm.norm_f": "component 'ssm' in block 1 (layers 1..2) (norm_f)",
        "head": "the head",
        "head.heads.attn": "the head of 'attn'",
    }
    assert set(expected) <= names
    assert {name: place_of(model, name) for name in expected} == expected


# ---- temperatures past float32: the hint names them -------------------------------------------------------
def steps_with(model, stage, data, teacher=None):
    freeze_for(model, stage)
    optim = build_optimizers(model, stage, 1)
    with pytest.raises(RunError) as info:
        list(train_steps(model, stage, 1, 0, data, optim, seed=0, device=torch.device("cpu"),
                         backward=lambda loss: loss.backward(), teacher=teacher,
                         clip=lambda params, norm: torch.nn.utils.clip_grad_norm_(params, norm)))
    return info.value


def test_a_distill_temperature_past_float32_is_named_in_the_hint(setup):
    """The front end bounds kl's temperature (1e-4 .. 1e4); one past float32 that reaches the loop anyway (a
    stage built in Python) makes logits / T overflow in the loss alone: the hint says which setting did it."""
    rs, stage, data = setup
    teacher = lower(rs).eval()
    hot = dataclasses.replace(stage, kind="distill", distill=Distill(temperature=1e-40), lr=1e-3)
    err = steps_with(lower(rs), hot, data, teacher=teacher)
    assert "the loss itself overflowed" in str(err)
    assert "kl(temperature=1e-40, ce=0) overflowed" in err.hint and "learning rate" not in err.hint


def test_a_dash_temperature_past_float32_is_named_in_the_hint(tmp_path_factory):
    rs, stage, data = stage_setup(tmp_path_factory.mktemp("dash"), f"- {{name: search, search: 'dash(tau=1.0)', "
                                  f"data: '{DATA}', steps: 1}}")
    cold = dataclasses.replace(stage, search=dataclasses.replace(stage.search, tau=1e-300))
    err = steps_with(lower(rs), cold, data)
    assert "the mixture weights of block 0" in str(err)
    assert "tau 1e-300" in err.hint and "learning rate" not in err.hint

"""A non-finite loss names where it came from: the parameters that went bad, else the part of the hybrid
whose output first went non-finite while every parameter is finite (an activation overflowed)."""

from __future__ import annotations

import math

import pytest
import torch

from hybridc.errors import RunError
from hybridc.nn.hybrid import lower
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

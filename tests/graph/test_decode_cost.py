"""Decode costs of the graph against transformers' own model of a component: parameters read per decoded
token and the numbers its cache keeps after a prefill of the graph's context length."""

from __future__ import annotations

import pytest
import torch

from hybridc.components.adapters import build_model
from hybridc.components.registry import get_family
from hybridc.graph.selection import discretize_graph
from hybridc.spec import load_spec
from tests.components.test_families import _cached_numbers
from tests.specs import write_spec
from tests.tiny_models import tiny_config

OTHER = {"family": "mamba", "hidden_size": 24, "layers": 3, "vocab_size": 96}


def read_per_token(model: torch.nn.Module) -> int:
    """Every weight once, but one row of each embedding table (token and learned positions); a head tied to
    the token embedding reads the whole table."""
    tables = [model.get_input_embeddings()]
    tables += [m for name, m in model.named_modules() if name.endswith(("wpe", "embed_positions"))
               and isinstance(m, torch.nn.Embedding)]
    total = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
    rows = sum(t.weight.shape[0] * t.weight.shape[1] - t.weight.shape[1] for t in tables)
    tied = model.get_output_embeddings() is not None and model.get_output_embeddings().weight is tables[0].weight
    return total - rows + (tables[0].weight.numel() if tied else 0)


@pytest.mark.parametrize("name", ["gpt2", "gpt-neo", "llama", "mamba", "mamba2", "qwen3", "falcon-h1"])
def test_a_one_component_discretization_decodes_as_its_component(tmp_path, name):
    config = tiny_config(name)
    family = get_family(name)
    model = build_model(family, config, seed=0)
    model.save_pretrained(tmp_path / "comp")
    other = ", ".join(f"{k}: {v}" for k, v in OTHER.items())
    text = (f"hybridc: 1\nname: decode\ncomponents:\n  it:\n    from: {tmp_path / 'comp'}\n    blocks: split(3)\n"
            f"  other:\n    init: {{{other}}}\n    blocks: split(3)\n"
            "hybrid: {mixture: search}\ntrain:\n  stages:\n"
            "    - {name: align, data: \"recall(vocab=16, length=40, examples=64)\", steps: 1}\n")
    rs = load_spec(write_spec(tmp_path, text))
    small = discretize_graph(rs, ("it", "it", "it"))
    assert small.decode_params == read_per_token(model)
    assert small.decode_state == sum(_cached_numbers(model.eval(), rs.context_length))

"""A component config its family cannot build is a located error naming the key, never an internal error: at
``compile`` for the families measured on the meta device (every exception from building their config or model
there), when a model is built for the others (``train``, ``compile --build``), and at ``validate`` for what the
built-in families' formulas check themselves (what their transformers config classes check)."""

from __future__ import annotations

import json
import re
import textwrap

import pytest
from click.testing import CliRunner

from hybridc.cli import main
from hybridc.components.adapters import build_model
from hybridc.components.registry import get_family
from hybridc.errors import SpecError
from hybridc.models.hybrid import lower
from hybridc.spec import load_spec
from tests.specs import write_spec
from tests.tiny_models import tiny_config

DATA = 'train:\n  stages: [{name: finetune, data: "recall(vocab=16, length=16, examples=64)", steps: 1}]\n'


def init_spec(family: str, extra: str) -> str:
    heads = "" if family in ("mamba", "mamba2") else "heads: 4, "
    return textwrap.dedent(f"""\
        hybridc: 1
        name: bad
        components:
          a:
            init: {{family: {family}, hidden_size: 32, layers: 2, {heads}vocab_size: 64, {extra}}}
        """) + DATA


def located_at_key(output: str, text: str, key: str) -> None:
    """The error's line and column are those of ``key``'s value in the spec's text, and it names the key."""
    match = re.search(r":(\d+):(\d+): error: (.*)", output)
    assert match, output
    line, col = int(match[1]), int(match[2])
    assert text.splitlines()[line - 1][:col - 1].endswith(f"{key}: "), (key, output)
    assert key in match[3] and "internal error" not in output and "Traceback" not in output, output


@pytest.mark.parametrize("family, extra, key", [
    ("qwen3", "layer_types: [full_attention]", "layer_types"),  # shorter than the layers
    ("qwen3", "layer_types: [bogus, bogus]", "layer_types"),  # a type transformers does not know
    ("qwen3", "rope_parameters: {rope_type: bogus, rope_theta: 10000.0}", "rope_parameters"),
    ("jamba", "expert_layer_offset: 5", "expert_layer_offset"),
])
def test_compile_locates_a_config_the_family_cannot_build_at_its_key(tmp_path, family, extra, key):
    text = init_spec(family, extra)
    assert CliRunner().invoke(main, ["validate", str(write_spec(tmp_path, text))]).exit_code == 0  # (torch-free)
    result = CliRunner().invoke(main, ["compile", str(write_spec(tmp_path, text))], env={"HYBRIDC_DEBUG": None})
    assert result.exit_code == 2, result.output
    located_at_key(result.output, text, key)


@pytest.mark.parametrize("family, extra, key", [
    ("qwen3", "num_key_value_heads: 0", "num_key_value_heads"),
    ("qwen3", "head_dim: 0", "head_dim"),
    ("jamba", "attn_layer_period: 0", "attn_layer_period"),
    ("jamba", "expert_layer_period: 0", "expert_layer_period"),
    ("llama", "num_key_value_heads: 3", "num_key_value_heads"),  # 4 heads do not split over 3
    ("llama", "head_dim: 0", "head_dim"),
    ("gpt-neo", "attention_types: [[[global], 5]]", "attention_types"),
    ("mamba", "expand: 0", "expand"),
    ("mamba2", "expand: 0", "expand"),
    ("mamba2", "n_groups: 3", "n_groups"),
])
def test_validate_refuses_counts_the_family_divides_by(tmp_path, family, extra, key):
    result = CliRunner().invoke(main, ["validate", str(write_spec(tmp_path, init_spec(family, extra)))])
    assert result.exit_code == 2 and key in result.output, result.output
    assert "internal error" not in result.output


def test_a_formula_family_built_for_training_locates_what_only_its_model_refuses(tmp_path):
    """Llama's parameters are counted by formula (compile builds nothing): an activation transformers does not
    know is found when the model is built, and located at its key."""
    text = init_spec("llama", "hidden_act: bogus")
    rs = load_spec(write_spec(tmp_path, text))
    with pytest.raises(SpecError) as info:
        lower(rs, pretrained=False)
    located_at_key(info.value.render(), text, "hidden_act")


def test_a_checkpoints_config_is_blamed_by_key_at_from(tmp_path):
    """A saved qwen3 whose config.json names a rope type transformers does not know: compile names the key
    and the default it builds with, located at ``from:``."""
    directory = tmp_path / "qwen3"
    build_model(get_family("qwen3"), tiny_config("qwen3"), seed=0).save_pretrained(directory)
    config = json.loads((directory / "config.json").read_text())
    config["rope_parameters"] = {"rope_type": "bogus", "rope_theta": 10000.0}
    (directory / "config.json").write_text(json.dumps(config))
    text = f"hybridc: 1\nname: bad\ncomponents:\n  a: {{from: {directory}}}\n" + DATA
    result = CliRunner().invoke(main, ["compile", str(write_spec(tmp_path, text))], env={"HYBRIDC_DEBUG": None})
    assert result.exit_code == 2 and ":4:" in result.output, result.output
    assert "'rope_parameters' is {'rope_type': 'bogus'" in result.output and "fix 'rope_parameters'" in result.output


def test_a_mamba2_checkpoint_whose_config_class_would_refuse_it_is_refused_at_validate(tmp_path):
    """``expand`` edited to 10**6 in a saved Mamba2's config.json: Mamba2Config requires hidden_size * expand =
    num_heads * head_dim; the formula family checks it too (before, compile counted 6.5G parameters and train
    failed)."""
    directory = tmp_path / "mamba2"
    build_model(get_family("mamba2"), tiny_config("mamba2"), seed=0).save_pretrained(directory)
    config = json.loads((directory / "config.json").read_text())
    config["expand"] = 10 ** 6
    (directory / "config.json").write_text(json.dumps(config))
    text = f"hybridc: 1\nname: bad\ncomponents:\n  a: {{from: {directory}}}\n" + DATA
    result = CliRunner().invoke(main, ["validate", str(write_spec(tmp_path, text))])
    assert result.exit_code == 2 and "must equal num_heads * head_dim" in result.output, result.output

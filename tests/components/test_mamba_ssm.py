"""Checkpoints in mamba-ssm's own layout (state-spaces' ``mamba-*``, ``mamba2-*``) as components.

Each case is a tiny transformers Mamba or Mamba2 with sizes drawn at random (state size, convolution,
expansion, heads, groups, a vocabulary that mamba-ssm pads, a tied or untied head) and every weight
perturbed, written in mamba-ssm's layout by the inverse of the mapping (written here, from mamba-ssm's
``MambaConfig`` and ``save_pretrained``: its config.json keys and ``backbone.embedding.`` names in a
``torch.save``d ``pytorch_model.bin``). A spec names the directory (``from: ./dir``) or the same files in
the offline Hub (``from: hf:state-spaces/...``); the hybrid on it must give the transformers model's own
logits. Damaged configs are located errors at ``validate`` (which reads no weights); damaged weights,
and a pickle that is not weights-only, are clear errors when the weights load, and nothing is unpickled.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from transformers import Mamba2Config, Mamba2ForCausalLM, MambaConfig, MambaForCausalLM

from hybridc.cli import main
from hybridc.errors import CompileError, SpecError
from hybridc.models.hybrid import lower
from hybridc.spec import load_spec
from tests.hub import put_in_hub

VOCAB = 90  # mamba-ssm pads it up to pad_vocab_size_multiple: the weights have more rows
TOL = 1e-4


def drawn(layer: str, seed: int) -> tuple[dict, torch.nn.Module]:
    """(mamba-ssm config.json, the transformers model it describes) with sizes drawn from ``seed``; every
    weight perturbed so that a tensor read from the wrong place changes the logits."""
    rng = random.Random(f"mamba-ssm:{layer}:{seed}")
    d_model, layers = rng.choice([16, 32]), rng.randint(2, 3)
    multiple = rng.choice([8, 16])
    padded = -(-VOCAB // multiple) * multiple
    tied = rng.random() < 0.5
    expand, d_conv = rng.choice([1, 2]), rng.choice([2, 4])
    if layer == "Mamba1":
        d_state = rng.choice([4, 8])
        ssm_cfg = {"d_state": d_state, "d_conv": d_conv, "expand": expand, "conv_bias": rng.random() < 0.5}
        config = MambaConfig(hidden_size=d_model, num_hidden_layers=layers, vocab_size=padded, state_size=d_state,
                             conv_kernel=d_conv, expand=expand, intermediate_size=expand * d_model,
                             use_conv_bias=ssm_cfg["conv_bias"], tie_word_embeddings=tied)
        model = MambaForCausalLM(config)
        if seed % 2:  # mamba-ssm 1's config.json: no d_intermediate, attention or tie_embeddings keys
            ssm_json = {"d_model": d_model, "n_layer": layers, "vocab_size": VOCAB, "ssm_cfg": ssm_cfg,
                        "rms_norm": True, "residual_in_fp32": True, "fused_add_norm": True,
                        "pad_vocab_size_multiple": multiple}
            if not tied:
                ssm_json["tie_embeddings"] = False
        else:
            ssm_json = None
    else:
        headdim = rng.choice([8, 16])
        heads = expand * d_model // headdim
        groups = rng.choice([g for g in (1, 2, 4) if heads % g == 0])
        d_state = rng.choice([8, 16])
        ssm_cfg = {"layer": "Mamba2", "d_state": d_state, "d_conv": d_conv, "expand": expand, "headdim": headdim,
                   "ngroups": groups, "chunk_size": rng.choice([4, 256])}
        config = Mamba2Config(hidden_size=d_model, num_hidden_layers=layers, vocab_size=padded, state_size=d_state,
                              conv_kernel=d_conv, expand=expand, head_dim=headdim, num_heads=heads, n_groups=groups,
                              chunk_size=ssm_cfg["chunk_size"], tie_word_embeddings=tied)
        model = Mamba2ForCausalLM(config)
        ssm_json = None
    if ssm_json is None:  # mamba-ssm 2's MambaConfig, every field
        ssm_json = {"d_model": d_model, "d_intermediate": 0, "n_layer": layers, "vocab_size": VOCAB, "ssm_cfg": ssm_cfg,
                    "attn_layer_idx": [], "attn_cfg": {}, "rms_norm": True, "residual_in_fp32": True,
                    "fused_add_norm": True, "pad_vocab_size_multiple": multiple, "tie_embeddings": tied}
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=generator))
    return ssm_json, model.eval()


def write_mamba_ssm(directory: Path, ssm_json: dict, model: torch.nn.Module) -> Path:
    """The model in mamba-ssm's layout: its config.json and ``torch.save(state_dict)`` with mamba-ssm's names
    (a tied head is in the state dict under both names, as mamba-ssm's own ``save_pretrained`` writes it)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(ssm_json, indent=4))
    state = {k.replace("backbone.embeddings.", "backbone.embedding."): v for k, v in model.state_dict().items()}
    torch.save(state, directory / "pytorch_model.bin")
    return directory


def spec(directory: Path, source: str, name: str = "m", blocks: str = "split(2)") -> Path:
    path = directory / "spec.yaml"
    path.write_text(f"hybridc: 1\nname: from-mamba-ssm\ncomponents:\n  {name}:\n    from: {source}\n"
                    f"    blocks: {blocks}\nhybrid:\n  mixture: fixed([[1], [1]])\n")
    return path


def own_logits(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids).logits


CASES = [("Mamba1", 0), ("Mamba1", 1), ("Mamba2", 0), ("Mamba2", 1)]


@pytest.mark.parametrize(("layer", "seed"), CASES)
def test_a_mamba_ssm_checkpoint_gives_the_transformers_models_logits(tmp_path, layer, seed):
    ssm_json, model = drawn(layer, seed)
    ids = torch.randint(0, VOCAB, (2, 11), generator=torch.Generator().manual_seed(seed))
    expected = own_logits(model, ids)
    write_mamba_ssm(tmp_path / "ckpt", ssm_json, model)
    moved = tmp_path / "elsewhere"
    shutil.move(tmp_path / "ckpt", moved)  # (nothing remembers where it was written)
    hybrid = lower(load_spec(spec(tmp_path, "./elsewhere")))
    with torch.no_grad():
        got = hybrid(input_ids=ids).logits
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() <= TOL
    component = load_spec(spec(tmp_path, "./elsewhere")).component("m")
    assert component.family == ("mamba" if layer == "Mamba1" else "mamba2")
    assert component.config["vocab_size"] == expected.shape[-1] > VOCAB  # mamba-ssm's padded vocabulary
    assert component.config["tie_word_embeddings"] == ssm_json.get("tie_embeddings", True)


def test_from_the_hub_and_the_transformers_layout_of_the_same_model(tmp_path):
    """``hf:state-spaces/<name>`` in mamba-ssm's layout loads through the Hub's cache; the same model in
    transformers' layout (what ``-hf`` repositories hold) still loads, to the same logits."""
    ssm_json, model = drawn("Mamba2", 3)
    written = write_mamba_ssm(tmp_path / "ckpt", ssm_json, model)
    put_in_hub("state-spaces/mamba2-tiny-test", {n: written / n for n in ("config.json", "pytorch_model.bin")})
    model.save_pretrained(tmp_path / "hf-layout")
    ids = torch.randint(0, VOCAB, (1, 9), generator=torch.Generator().manual_seed(3))
    expected = own_logits(model, ids)
    for source in ("hf:state-spaces/mamba2-tiny-test", "./hf-layout"):
        hybrid = lower(load_spec(spec(tmp_path, source)))
        with torch.no_grad():
            assert (hybrid(input_ids=ids).logits - expected).abs().max().item() <= TOL, source


def located(tmp_path: Path, ssm_json: dict) -> list[str]:
    """The messages ``validate`` gives for a checkpoint with this config.json (its weights are garbage: a
    validation that read them would fail otherwise)."""
    directory = tmp_path / "ckpt"
    directory.mkdir(exist_ok=True)
    (directory / "config.json").write_text(json.dumps(ssm_json))
    (directory / "pytorch_model.bin").write_bytes(b"not read at validate")
    path = spec(tmp_path, "./ckpt")
    try:
        load_spec(path)
    except SpecError as err:
        for d in err.diagnostics:
            assert (d.location.file, d.location.line) == (str(path), 5)  # the component's `from:` line
        return [d.message for d in err.diagnostics]
    return []


GOOD = {"d_model": 16, "n_layer": 2, "vocab_size": VOCAB, "ssm_cfg": {"layer": "Mamba2", "headdim": 8},
        "rms_norm": True, "residual_in_fp32": True, "fused_add_norm": True, "pad_vocab_size_multiple": 8}


@pytest.mark.parametrize(("change", "fragments"), [
    ({"d_intermediate": 64}, ["'d_intermediate' is 64", "MLP"]),
    ({"attn_layer_idx": [1]}, ["'attn_layer_idx' is [1]", "attention layers"]),
    ({"rms_norm": False}, ["'rms_norm' is false", "LayerNorm"]),
    ({"n_layer": "two"}, ["'n_layer' is 'two'", "positive whole number"]),
    ({"colour": 1}, ["unknown key 'colour'"]),
    ({"ssm_cfg": {"layer": "Mamba3"}}, ["'ssm_cfg.layer' is 'Mamba3'"]),
    ({"ssm_cfg": {"layer": "Mamba2", "headdim": 8, "d_stat": 16, "D_has_hdim": True}},
     ["unknown key 'ssm_cfg.d_stat'", "'ssm_cfg.D_has_hdim' is True"]),
    ({"ssm_cfg": {"layer": "Mamba2", "headdim": 12}}, ["not divisible by 'ssm_cfg.headdim' 12"]),
    ({"ssm_cfg": {"d_state": -1, "dt_rank": "big"}}, ["'ssm_cfg.d_state' is -1", "'ssm_cfg.dt_rank' is 'big'"]),
])
def test_a_config_transformers_cannot_run_is_a_located_error_at_validate(tmp_path, change, fragments):
    messages = located(tmp_path, {**GOOD, **change})
    assert messages, change
    assert all(m.startswith("component 'm': its config.json (mamba-ssm's layout): ") for m in messages), messages
    for fragment in fragments:
        assert any(fragment in m for m in messages), (fragment, messages)


def test_validate_reads_the_config_not_the_weights(tmp_path):
    assert located(tmp_path, GOOD) == []  # (its pytorch_model.bin is not a weights file: never read)
    (tmp_path / "ckpt" / "pytorch_model.bin").unlink()
    with pytest.raises(SpecError) as err:
        load_spec(spec(tmp_path, "./ckpt"))
    assert ("'./ckpt' holds a mamba-ssm config.json but no weights (model.safetensors or pytorch_model.bin)"
            in err.value.diagnostics[0].message)


class Payload:
    """Unpickling this runs code (creates a file): what weights_only must refuse."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def tied_mamba(tmp_path_factory) -> tuple[dict, dict[str, torch.Tensor]]:
    """A Mamba checkpoint with a tied head: its config.json and state dict in mamba-ssm's names."""
    ssm_json, model = drawn("Mamba1", 2)
    ssm_json["tie_embeddings"] = True
    model.tie_weights()
    state = {k.replace("backbone.embeddings.", "backbone.embedding."): v.clone() for k, v in model.state_dict().items()}
    state["lm_head.weight"] = state["backbone.embedding.weight"]
    return ssm_json, state


def damaged(tmp_path: Path, tied_mamba, damage) -> str:
    """The error ``compile --build`` gives once ``damage(state, directory)`` changed the checkpoint (exit 2,
    one located line, no traceback)."""
    ssm_json, state = tied_mamba
    directory = tmp_path / "ckpt"
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps(ssm_json))
    state = dict(state)
    damage(state, directory)
    if not (directory / "pytorch_model.bin").exists():
        torch.save(state, directory / "pytorch_model.bin")
    result = CliRunner().invoke(main, ["compile", str(spec(tmp_path, "./ckpt")), "--build"])
    assert result.exit_code == CompileError.exit_code == 2, result.output
    assert "Traceback" not in result.output
    error = [line for line in result.output.splitlines() if "error:" in line]
    assert len(error) == 1 and "cannot load the weights of component 'm' from ./ckpt" in error[0], result.output
    return error[0]


def test_missing_unexpected_and_misshapen_tensors_are_named(tmp_path, tied_mamba):
    def damage(state, _):
        del state["backbone.layers.1.mixer.D"]
        state["backbone.layers.0.mixer.extra"] = torch.zeros(2)
        state["backbone.norm_f.weight"] = torch.ones(3)

    error = damaged(tmp_path, tied_mamba, damage)
    assert "missing backbone.layers.1.mixer.D" in error
    assert "unexpected backbone.layers.0.mixer.extra" in error
    assert "of another shape backbone.norm_f.weight [3]" in error


def test_a_tied_head_that_differs_from_the_embedding_is_refused(tmp_path, tied_mamba):
    def damage(state, _):
        state["lm_head.weight"] = state["backbone.embedding.weight"] + 1

    assert "lm_head.weight differs from the embedding" in damaged(tmp_path, tied_mamba, damage)


def test_a_pickle_that_is_not_weights_only_is_refused_and_never_run(tmp_path, tied_mamba):
    marker = tmp_path / "code-ran"

    def damage(state, directory):
        torch.save({**state, "backbone.norm_f.weight": Payload(marker)}, directory / "pytorch_model.bin")

    error = damaged(tmp_path, tied_mamba, damage)
    assert "pytorch_model.bin holds more than weights" in error and "system" in error
    assert "hint: use a copy of the checkpoint that holds only its tensors" in error
    assert not marker.exists()


def test_a_truncated_weights_file_is_a_clear_error(tmp_path, tied_mamba):
    def damage(state, directory):
        torch.save(state, directory / "pytorch_model.bin")
        data = (directory / "pytorch_model.bin").read_bytes()
        (directory / "pytorch_model.bin").write_bytes(data[: len(data) // 2])

    assert "pytorch_model.bin cannot be read as PyTorch weights" in damaged(tmp_path, tied_mamba, damage)

"""Model directories hybridc refuses to load, clearly (exit 1, no traceback) and without running code:
pickled weights only, an empty weights file; a checkpoint whose optimizer state is a pickle of code."""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import pytest
import torch
from click.testing import CliRunner

from hybridc.cli import main
from hybridc.models.hybrid import lower
from hybridc.spec import load_spec
from tests.specs import SMALL, write_spec
from tests.train.helpers import DATA, run, spec_text


class Exploit:
    """Unpickling this runs a shell command that leaves a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("command", [["eval", "--data", "recall(vocab=16, length=16)"], ["discretize"],
                                     ["generate", "hi"]])
def test_pickled_weights_are_never_loaded(tmp_path, command):
    saved = tmp_path / "saved"
    lower(load_spec(write_spec(tmp_path, SMALL))).save_pretrained(saved)
    (saved / "model.safetensors").unlink()
    marker = tmp_path / "pwned"
    torch.save({"weight": Exploit(marker)}, saved / "pytorch_model.bin")
    result = CliRunner().invoke(main, [command[0], str(saved), *command[1:]])
    assert result.exit_code == 1, result.output
    assert "holds no model.safetensors (only pytorch_model.bin)" in result.output and "Traceback" not in result.output
    assert not marker.exists()


def test_an_empty_or_truncated_weights_file_is_a_clear_refusal(tmp_path):
    saved = tmp_path / "saved"
    lower(load_spec(write_spec(tmp_path, SMALL))).save_pretrained(saved)
    weights = saved / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(b"")
    empty = CliRunner().invoke(main, ["discretize", str(saved)])
    assert empty.exit_code == 1 and "model.safetensors is empty" in empty.output
    weights.write_bytes(data[: len(data) // 2])
    cut = CliRunner().invoke(main, ["discretize", str(saved)])
    assert cut.exit_code == 1 and "cannot load the model in" in cut.output, cut.output
    assert "internal error" not in cut.output


def test_a_checkpoint_whose_optimizer_state_is_code_is_refused(tmp_path):
    from hybridc.errors import RunError

    text = spec_text(f"- {{name: search, data: '{DATA}', steps: 4}}", train_extra="  checkpoint_every: 2\n")
    text = text.replace("  checkpoint_every: 0\n", "")
    run(tmp_path, text, max_steps=None)
    step = sorted((tmp_path / "run" / "checkpoints").iterdir())[0]
    marker = tmp_path / "pwned"
    torch.save({"weights": Exploit(marker)}, step / "optimizer.pt")
    state = json.loads((step / "state.json").read_text())
    state["manifest"]["optimizer.pt"] = hashlib.sha256((step / "optimizer.pt").read_bytes()).hexdigest()
    (step / "state.json").write_text(json.dumps(state))
    for other in (tmp_path / "run" / "checkpoints").iterdir():
        if other != step:
            shutil.rmtree(other)
    with pytest.raises(RunError, match="optimizer.pt was refused"):
        run(tmp_path, text, resume=True)
    assert not marker.exists()


def test_weights_saved_under_the_projector_names_of_earlier_releases_load(tmp_path):
    """Earlier releases named the blocks' projectors ``in_proj``/``out_proj``: a saved hybrid and a checkpoint
    written so still load, to the same model."""
    from safetensors.torch import load_file, save_file

    from hybridc.models.hybrid import HybridModel
    from hybridc.train.checkpoint import load_weights

    model = lower(load_spec(write_spec(tmp_path, SMALL)), pretrained=False).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    model.save_pretrained(tmp_path / "saved")
    weights = tmp_path / "saved" / "model.safetensors"
    state = load_file(str(weights))
    old = {k.replace(".projector_in.", ".in_proj.").replace(".projector_out.", ".out_proj."): v for k, v in state.items()}
    assert any(".in_proj." in k for k in old) and old.keys() != state.keys()
    save_file(old, str(weights), metadata={"format": "pt"})
    ids = torch.randint(0, 64, (2, 10))
    again = HybridModel.from_pretrained(tmp_path / "saved").eval()
    other = lower(load_spec(write_spec(tmp_path, SMALL)), pretrained=False).eval()
    assert load_weights(other, weights) == ([], [])
    with torch.no_grad():
        assert torch.equal(again(ids).logits, model(ids).logits)
        assert torch.equal(other(ids).logits, model(ids).logits)

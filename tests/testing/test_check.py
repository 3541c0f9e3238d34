"""``hybridc check SPEC``: hybridc's invariants on a user's spec and variations of it, with tiny stand-ins."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from hybridc.cli import main
from hybridc.testing.check import check_spec, stand_in_spec
from hybridc.testing.specs import resolve
from hybridc.testing.tiny import tiny_checkpoint

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "specs" / "quickstart.yaml"

# a checkpoint whose own code (trust_remote_code) changes what its forward computes: hybridc runs the family's
# transformers class, the directory's model is the edited one, and one-hot on it is no longer it
EDITED_CODE = '''from transformers import LlamaForCausalLM


class EditedLlamaForCausalLM(LlamaForCausalLM):
    def forward(self, *args, **kwargs):
        out = super().forward(*args, **kwargs)
        out.logits = out.logits * 2
        return out
'''


def spec_with_directories(tmp_path: Path, *, edited: bool) -> Path:
    tiny_checkpoint("llama", tmp_path / "models" / "neo", layers=2, seed=1)
    tiny_checkpoint("mamba", tmp_path / "models" / "ssm", layers=2, seed=2)
    if edited:
        (tmp_path / "models" / "neo" / "modeling_edited.py").write_text(EDITED_CODE)
        config = json.loads((tmp_path / "models" / "neo" / "config.json").read_text())
        config["auto_map"] = {"AutoModelForCausalLM": "modeling_edited.EditedLlamaForCausalLM"}
        (tmp_path / "models" / "neo" / "config.json").write_text(json.dumps(config, indent=2))
    spec = tmp_path / "spec.yaml"
    spec.write_text("hybridc: 1\nname: local\ntokenizer: neo\ncomponents:\n"
                    f"  neo:\n    from: models/neo\n    blocks: split(2)\n    trust_remote_code: {str(edited).lower()}\n"
                    "  ssm:\n    from: models/ssm\n    blocks: 0..1, 1..2\nhybrid:\n  mixture: search\n")
    return spec


def test_an_edited_component_directory_fails_one_hot_and_prints_the_spec(tmp_path) -> None:
    spec = spec_with_directories(tmp_path, edited=True)
    result = CliRunner().invoke(main, ["check", str(spec), "--examples", "3"])
    assert result.exit_code == 1, result.output
    assert "FAILED: one-hot equals the component's own logits" in result.output
    assert "one-hot on 'neo' (llama)" in result.output
    printed = result.output.split("as a spec (components replaced by tiny stand-ins, deleted since):\n", 1)[1]
    data = yaml.safe_load("\n".join(line[4:] for line in printed.splitlines() if line.startswith("    ")))
    assert list(data["components"]) == ["neo", "ssm"] and data["components"]["neo"]["trust_remote_code"] is True
    assert "Traceback" not in result.output


def test_the_same_directories_unedited_pass(tmp_path) -> None:
    outcome = check_spec(spec_with_directories(tmp_path, edited=False), examples=1, seed=3)
    assert outcome.failure is None, outcome.failure
    assert outcome.examples == 1 and [line.split(":")[0] for line in outcome.stand_ins] == ["neo", "ssm"]


def test_stand_ins_keep_what_the_spec_relies_on(tmp_path) -> None:
    """Stand-ins keep each component's family, layers, vocabulary and settings (a from: directory's own code and
    tokenizer files come along); only the widths shrink."""
    spec = spec_with_directories(tmp_path, edited=True)
    rs = resolve(spec)
    data, said = stand_in_spec(rs, tmp_path / "stand-ins")
    again = resolve(data, spec.parent)
    for name in rs.names:
        real, tiny = rs.component(name), again.component(name)
        assert (tiny.family, tiny.num_layers, tiny.shape.vocab_size) == (real.family, real.num_layers, real.shape.vocab_size)
        assert [str(r) for r in tiny.ranges] == [str(r) for r in real.ranges]
    assert (tmp_path / "stand-ins" / "neo" / "modeling_edited.py").is_file()
    assert json.loads((tmp_path / "stand-ins" / "neo" / "config.json").read_text())["auto_map"]
    quick = resolve(QUICKSTART)
    data, _ = stand_in_spec(quick, tmp_path / "q")
    assert data["components"]["attn"]["init"]["hidden_size"] == 32 and data["components"]["attn"]["init"]["layers"] == 2


def test_an_invalid_spec_is_a_located_error(tmp_path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(QUICKSTART.read_text().replace("projector: linear", "projector: lineer"))
    result = CliRunner().invoke(main, ["check", str(spec)])
    assert result.exit_code == 2
    assert f"{spec}:" in result.output and "error: 'hybrid.projector' must be a projector kind" in result.output


def test_without_hypothesis_check_says_what_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "hypothesis", None)
    result = CliRunner().invoke(main, ["check", str(QUICKSTART)])
    assert result.exit_code == 1
    assert "hybridc check needs hypothesis" in result.output and "pip install 'hybridc[testing]'" in result.output


def test_the_pre_commit_hook_runs_check() -> None:
    hooks = {hook["id"]: hook for hook in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}
    assert hooks["hybridc-check"]["entry"] == "hybridc check"
    assert hooks["hybridc-check"]["language"] == "system"


@pytest.mark.slow
def test_the_quickstart_passes_check_with_20_examples() -> None:
    """The acceptance run (CI's long part): ``hybridc check specs/quickstart.yaml --examples 20`` in a real process."""
    import subprocess

    done = subprocess.run([shutil.which("hybridc") or "hybridc", "check", str(QUICKSTART), "--examples", "20"],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "the spec and 20 variations of it hold every invariant" in done.stdout

"""The distill stage: the discretized hybrid (student) learns from the continuous one before it (teacher)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from hybridc.errors import SpecError
from hybridc.train import run as run_module
from tests.train.helpers import DATA, run, spec_text

DISTILLED = f"""\
- {{name: search, search: 'darts(lr=0.3)', data: '{DATA}', steps: 4, batch_size: 4}}
- {{name: discretize}}
- {{name: distill, distill: 'kl(temperature=2.0)', steps: 6, batch_size: 4}}
"""


def train_records(run_dir, stage):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["event"] == "train" and r["stage"] == stage]


def test_a_student_identical_to_its_teacher_has_zero_distill_loss(tmp_path):
    """At one-hot alphas the discretized hybrid computes what the continuous one does (identity projectors
    where the component changes), so the first distill step's loss is 0; cross-entropy adds its own."""
    stages = f"""\
    - {{name: discretize}}
    - {{name: distill, data: '{DATA}', steps: 1, batch_size: 4}}
    - {{name: again, kind: distill, distill: 'kl(temperature=1.0, ce=1.0)', steps: 1, batch_size: 4}}
    """
    result, _ = run(tmp_path, spec_text(stages, mixture="fixed([[1.0, 0.0], [1.0, 0.0]])"))
    (first,) = train_records(result.run_dir, "distill")
    assert abs(first["loss"]) < 1e-6
    (mixed,) = train_records(result.run_dir, "again")
    assert mixed["loss"] > 0.5  # the cross-entropy of a barely trained model on recall


def test_the_teacher_never_changes_and_is_released(tmp_path, monkeypatch):
    """The teacher the distill stage reads is, at its end, the continuous hybrid saved at the discretize
    stage, bit for bit; afterwards the run holds neither it nor its files."""
    seen = {}
    release = run_module.Run.release_teacher

    def check_then_release(self, k):
        saved = next((self.run_dir / "teacher" / "checkpoints").iterdir()) / "model.safetensors"
        seen["saved"] = load_file(str(saved))
        seen["teacher"] = {k: v.clone() for k, v in self.teacher.state_dict().items()}
        seen["requires_grad"] = any(p.requires_grad for p in self.teacher.parameters())
        release(self, k)
        seen["after"] = self.teacher

    monkeypatch.setattr(run_module.Run, "release_teacher", check_then_release)
    result, _ = run(tmp_path, spec_text(DISTILLED))
    teacher, saved = seen["teacher"], seen["saved"]
    assert saved and all(torch.equal(teacher[k], saved[k]) for k in saved)
    assert not seen["requires_grad"] and seen["after"] is None
    assert not (result.run_dir / "teacher").exists()
    losses = [r["loss"] for r in train_records(result.run_dir, "distill")]
    assert len(losses) == 6 and all(0 < loss < 1 for loss in losses)  # a KL, not a cross-entropy of ~2.8


def test_a_resumed_distill_stage_loads_its_teacher_and_matches(tmp_path, monkeypatch):
    """Stopped inside the distill stage and resumed by a new trainer (the teacher read back from RUN/teacher),
    the run ends bit-identical to one never stopped."""
    monkeypatch.setattr(run_module.Run, "release_teacher", lambda self, k: None)  # keep its files to copy
    text = spec_text(DISTILLED).replace("checkpoint_every: 0", "checkpoint_every: 7")
    straight, _ = run(tmp_path, text, name="straight")
    monkeypatch.undo()
    stopped = tmp_path / "stopped"
    shutil.copytree(straight.run_dir, stopped)
    shutil.rmtree(stopped / "final")
    newest = max((stopped / "checkpoints").iterdir(), key=lambda p: int(p.name[5:]))
    assert newest.name == "step-10"
    shutil.rmtree(newest)  # step-7 is left: 3 of the 6 distill steps done
    lines = (stopped / "metrics.jsonl").read_text().splitlines()
    (stopped / "metrics.jsonl").write_text(
        "\n".join(line for line in lines if json.loads(line).get("global_step", 0) <= 7
                  and json.loads(line)["event"] != "test") + "\n")
    resumed, messages = run(tmp_path, text, name="stopped", resume=True)
    assert any("resuming from step-7" in m for m in messages)
    a = load_file(str(straight.run_dir / "final" / "model.safetensors"))
    b = load_file(str(resumed.run_dir / "final" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not (stopped / "teacher").exists()


def test_a_damaged_teacher_is_refused_not_used(tmp_path, monkeypatch):
    monkeypatch.setattr(run_module.Run, "release_teacher", lambda self, k: None)
    text = spec_text(DISTILLED).replace("checkpoint_every: 0", "checkpoint_every: 7")
    straight, _ = run(tmp_path, text, name="straight")
    shutil.rmtree(straight.run_dir / "final")
    for step in (straight.run_dir / "checkpoints").iterdir():
        if step.name == "step-10":
            shutil.rmtree(step)
    weights = next((straight.run_dir / "teacher" / "checkpoints").iterdir()) / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    from hybridc.errors import RunError

    with pytest.raises(RunError, match="holds no teacher this run saved"):
        run(tmp_path, text, name="straight", resume=True)


@pytest.mark.parametrize("stages, message", [
    (f"- {{name: distill, data: '{DATA}', steps: 2}}", "stage 'distill' distills, but no discretize stage comes before it"),
    (f"- {{name: finetune, data: '{DATA}', steps: 2, distill: kl}}", "only distill stages take 'distill'"),
    (f"- {{name: discretize}}\n- {{name: distill, data: '{DATA}', distill: 'kl(temperature=0)'}}",
     "'temperature' of kl\\(\\) must be >= 0.0001, not 0"),
    (f"- {{name: discretize}}\n- {{name: distill, data: '{DATA}', distill: 'mse'}}",
     "invalid distillation loss 'mse' .hint: known: kl\\(temperature=2.0, ce=0.0\\)"),
])
def test_bad_distill_stages_are_located_errors(tmp_path, stages, message):
    from hybridc.spec import load_spec
    from tests.specs import write_spec

    with pytest.raises(SpecError, match=message):
        load_spec(write_spec(tmp_path, spec_text(stages, mixture="fixed([[0.5, 0.5], [0.5, 0.5]])")))

"""Damaged checkpoints on ``hybridc train SPEC --resume``: a checkpoint whose files were cut, or edited with
the manifest's hashes rewritten to match (as a careless edit would), is never resumed from. Each check
(hashes, which cover state.json too; the meaning of state.json for the run's plan; the weights' names,
shapes and dtypes) skips a checkpoint that fails it for the previous one, as a hash mismatch always did,
with a warning naming the file and the field; when every checkpoint fails, the resume is refused (exit
status 2, every problem named, no traceback) and nothing in the run directory is written.

One run is trained once for the module: search (8 steps), discretize, retrain (6 steps), stopped after
step 3 of retrain. It leaves step-10 and step-11 (retrain after 2 and 3 of its steps: a selection, the
stage's recorded step count and threads). A straight run of the same spec gives the weights a good resume
must end with."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

from hybridc.cli import main
from hybridc.errors import Interrupted
from hybridc.train.checkpoint import (DamagedCheckpoint, ResumePlan, StageBound, check_state, state_digest)
from hybridc.train.threads import machine_cores
from tests.specs import write_spec
from tests.train.helpers import DATA, run, spec_text

STAGES = f"""\
    - {{name: search, search: 'darts(lr=0.1)', data: '{DATA}', steps: 8}}
    - {{name: discretize}}
    - {{name: retrain, steps: 6}}
    """
TEXT = spec_text(STAGES).replace("checkpoint_every: 0", "checkpoint_every: 2")
OLDER, NEWER = "step-10", "step-11"


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """(spec, the stopped run, the straight run's final weights)."""
    root = tmp_path_factory.mktemp("damage")
    result, _ = run(root, TEXT, name="straight")
    straight = load_file(str(result.final_dir / "model.safetensors"))
    import hybridc.train.run as run_module

    calls = {"n": 0}

    def stop_after_11(self) -> bool:  # as SIGTERM at step 11 does: a checkpoint, then Interrupted
        calls["n"] += 1
        return calls["n"] == 11

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(run_module.Run, "stop_requested", stop_after_11)
        with pytest.raises(Interrupted):
            run(root, TEXT, name="stopped")
    stopped = root / "stopped"
    assert sorted(p.name for p in (stopped / "checkpoints").iterdir()) == sorted([NEWER, OLDER])
    assert not (stopped / "final").exists()
    return write_spec(root, TEXT, "spec.yaml"), stopped, straight


@pytest.fixture
def copy(made, tmp_path):
    """A fresh copy of the stopped run for one test: (spec, run directory, straight run's final weights)."""
    spec, stopped, straight = made
    target = tmp_path / "run"
    shutil.copytree(stopped, target)
    return spec, target, straight


def state_of(step: Path) -> dict:
    return json.loads((step / "state.json").read_text())


def write_state(step: Path, state: dict, rehash: bool = True) -> None:
    """Write state.json; ``rehash``: with every hash of the manifest rewritten to match (a careless edit)."""
    if rehash:
        manifest = state.get("manifest")
        if isinstance(manifest, dict):
            for name in ("model.safetensors", "optimizer.pt"):
                if name in manifest:
                    manifest[name] = hashlib.sha256((step / name).read_bytes()).hexdigest()
            if "state.json" in manifest:
                manifest["state.json"] = state_digest(state)
    (step / "state.json").write_text(json.dumps(state, indent=2))


def edit_position(step: Path, rehash: bool = True, **changes) -> None:
    state = state_of(step)
    for key, value in changes.items():
        if key in ("threads", "stage_steps", "metrics"):
            state["position"]["extra"][key] = value
        else:
            state["position"][key] = value
    write_state(step, state, rehash)


def edit_weights(step: Path, change) -> None:
    tensors = load_file(str(step / "model.safetensors"))
    change(tensors)
    save_file(tensors, str(step / "model.safetensors"), metadata={"format": "pt"})
    write_state(step, state_of(step))


def snapshot(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file() and p.name != ".lock"}


def resume(spec: Path, run_dir: Path):
    return CliRunner().invoke(main, ["train", str(spec), "-o", str(run_dir), "--resume", "-q"],
                              env={"HYBRIDC_DEBUG": None})


def assert_refused(spec: Path, run_dir: Path, *fields: str):
    """Every checkpoint damaged: exit 2, each checkpoint's problem named, no traceback, nothing written."""
    before = snapshot(run_dir)
    result = resume(spec, run_dir)
    output = result.output
    assert result.exit_code == 2, output
    assert "Traceback" not in output and "internal error" not in output, output
    assert "every checkpoint in" in output and "is incomplete or damaged" in output, output
    assert "hint:" in output, output
    for name in (OLDER, NEWER):
        assert f"{run_dir / 'checkpoints' / name}" in output, output
    for field in fields:
        assert field in output, output
    assert not (run_dir / "final").exists()
    assert snapshot(run_dir) == before  # metrics.jsonl, checkpoints: as they were
    return output


def assert_falls_back(spec: Path, run_dir: Path, straight: dict, *fields: str):
    """Only the newest checkpoint damaged: it is skipped with a warning naming the field; the run resumes
    from the older one and ends with the straight run's weights."""
    result = resume(spec, run_dir)
    output = result.output
    assert result.exit_code == 0, output
    assert f"checkpoint {NEWER} is damaged, skipped" in output and f"resuming from {OLDER}" in output, output
    for field in fields:
        assert field in output, output
    final = load_file(str(run_dir / "final" / "model.safetensors"))
    assert final.keys() == straight.keys() and all(torch.equal(final[k], straight[k]) for k in final)
    return output


def assert_resumes_intact(spec: Path, run_dir: Path, straight: dict) -> None:
    """The newest checkpoint is used without a warning and the run ends with the straight run's weights."""
    result = resume(spec, run_dir)
    assert result.exit_code == 0, result.output
    assert f"resuming from {NEWER}" in result.output and "damaged" not in result.output
    final = load_file(str(run_dir / "final" / "model.safetensors"))
    assert all(torch.equal(final[k], straight[k]) for k in straight)


def both(run_dir: Path):
    return [run_dir / "checkpoints" / OLDER, run_dir / "checkpoints" / NEWER]


# ---- the checkpoints as written ------------------------------------------------------------------------
def test_state_json_is_covered_by_the_manifest(copy):
    spec, run_dir, straight = copy
    for step in both(run_dir):
        state = state_of(step)
        assert set(state["manifest"]) == {"model.safetensors", "optimizer.pt", "state.json"}
        assert state["manifest"]["state.json"] == state_digest(state)
    newer = state_of(run_dir / "checkpoints" / NEWER)["position"]
    assert (newer["stage_index"], newer["stage_step"], newer["global_step"]) == (2, 3, 11)
    assert newer["selection"] and newer["extra"]["stage_steps"] == 6 and newer["extra"]["threads"] >= 1


def test_an_intact_run_resumes_to_the_straight_runs_weights(copy):
    spec, run_dir, straight = copy
    assert_resumes_intact(spec, run_dir, straight)


# ---- every checkpoint damaged: refused ---------------------------------------------------------------
def test_stage_index_past_the_plan_is_refused(copy):
    spec, run_dir, _ = copy
    for step in both(run_dir):
        edit_position(step, stage_index=99)
    assert_refused(spec, run_dir, "state.json: 'position.stage_index' is 99", "the plan has 3 stages")


def test_a_stage_step_past_the_stage_is_refused(copy):
    spec, run_dir, _ = copy
    for step in both(run_dir):
        edit_position(step, stage_step=10 ** 6)
    assert_refused(spec, run_dir, "'position.stage_step' is 1000000", "stage 2 ('retrain', retrain) has 6 steps")


def test_a_negative_stage_step_is_refused(copy):
    spec, run_dir, _ = copy
    for step in both(run_dir):
        edit_position(step, stage_step=-5)
    assert_refused(spec, run_dir, "'position.stage_step' is -5", "outside 0..6")


@pytest.mark.parametrize("field, value, said", [
    ("stage_step", True, "'position.stage_step' is true: a boolean, not an integer"),
    ("stage_index", 2.0, "'position.stage_index' is 2.0: a number, not an integer"),
    ("stage_index", "2", "'position.stage_index' is \"2\": a string, not an integer"),
    ("global_step", None, "'position.global_step' is null: not an integer"),
    ("stage_steps", 6.5, "'position.extra.stage_steps' is 6.5: a number, not an integer"),
    ("threads", "4", "'position.extra.threads' is \"4\": a string, not an integer"),
    ("metrics", False, "'position.extra.metrics' is false: a boolean, not an integer"),
])
def test_a_value_of_the_wrong_type_is_refused(copy, field, value, said):
    spec, run_dir, _ = copy
    for step in both(run_dir):
        edit_position(step, **{field: value})
    assert_refused(spec, run_dir, said)


def test_a_thread_count_the_machine_cannot_run_is_refused(copy):
    spec, run_dir, _ = copy
    for step in both(run_dir):
        edit_position(step, threads=10 ** 6)
    assert_refused(spec, run_dir, "'position.extra.threads' is 1000000", f"outside 1..{4 * machine_cores()}")


def test_no_threads_is_refused(copy):
    spec, run_dir, _ = copy
    for step in both(run_dir):
        edit_position(step, threads=0)
    assert_refused(spec, run_dir, "'position.extra.threads' is 0")


def test_a_recorded_step_count_other_than_the_stages_is_refused(copy):
    spec, run_dir, _ = copy
    for step in both(run_dir):
        edit_position(step, stage_steps=10 ** 6)
    assert_refused(spec, run_dir, "'position.extra.stage_steps' is 1000000", "stage 'retrain' has 6 steps")


def test_a_global_step_other_than_the_checkpoints_is_refused(copy):
    spec, run_dir, _ = copy
    for step in both(run_dir):
        edit_position(step, global_step=10 ** 6)
    assert_refused(spec, run_dir, "'position.global_step' is 1000000: the checkpoint is step-")


def test_a_wrong_shaped_weight_is_refused(copy):
    spec, run_dir, _ = copy
    for step in both(run_dir):
        edit_weights(step, lambda t: t.__setitem__("embed.sources.attn.weight", torch.zeros(7, 3)))
    assert_refused(spec, run_dir, "model.safetensors: tensor 'embed.sources.attn.weight' is [7, 3] float32")


def test_a_weight_of_another_dtype_is_refused(copy):
    spec, run_dir, _ = copy
    for step in both(run_dir):
        edit_weights(step, lambda t: t.__setitem__("embed.sources.attn.weight",
                                                   t["embed.sources.attn.weight"].double()))
    assert_refused(spec, run_dir, "tensor 'embed.sources.attn.weight' is", "float64; the model's is", "float32")


def test_a_missing_weight_is_refused(copy):
    spec, run_dir, _ = copy
    for step in both(run_dir):
        edit_weights(step, lambda t: t.pop("embed.sources.attn.weight"))
    assert_refused(spec, run_dir, "model.safetensors: has no tensor 'embed.sources.attn.weight'")


def test_a_weight_the_model_does_not_have_is_refused(copy):
    spec, run_dir, _ = copy
    for step in both(run_dir):
        edit_weights(step, lambda t: t.__setitem__("blocks.9.extra", torch.zeros(2)))
    assert_refused(spec, run_dir, "holds tensor 'blocks.9.extra', which the model does not have")


def test_an_empty_manifest_is_refused(copy):
    spec, run_dir, _ = copy
    for step in both(run_dir):
        state = state_of(step)
        state["manifest"] = {}
        write_state(step, state, rehash=False)
    assert_refused(spec, run_dir, "state.json: 'manifest' is empty")


def test_a_manifest_without_the_weights_is_refused(copy):
    spec, run_dir, _ = copy
    for step in both(run_dir):
        state = state_of(step)
        del state["manifest"]["model.safetensors"]
        write_state(step, state)
    assert_refused(spec, run_dir, "'manifest' has no hash for model.safetensors")


@pytest.mark.parametrize("selection, said", [
    (["attn", "nope"], "'nope' is no component of the spec (attn, ssm)"),
    (["attn"], "1 entries; the hybrid has 2 blocks"),
    ("attn", "a string, not a list of component names"),
    (None, "'position.selection' is missing: a discretize stage comes before stage 2"),
])
def test_a_bad_selection_is_refused(copy, selection, said):
    spec, run_dir, _ = copy
    for step in both(run_dir):
        edit_position(step, selection=selection)
    assert_refused(spec, run_dir, said)


def test_state_json_edited_without_its_hash_is_refused(copy):
    spec, run_dir, _ = copy
    for step in both(run_dir):
        edit_position(step, rehash=False, stage_step=1)
    assert_refused(spec, run_dir, "state.json: does not match its hash in the manifest")


def test_state_json_edited_with_its_hash_rewritten_is_refused_when_it_contradicts_itself(copy):
    """In range, hashes right, but a selection before the discretize stage: the model it describes is not
    one a checkpoint at that stage holds."""
    spec, run_dir, _ = copy
    for step in both(run_dir):
        state = state_of(step)
        position = state["position"]
        position.update(stage_index=1, stage_step=0, extra={"metrics": position["extra"]["metrics"]})
        write_state(step, state)
    assert_refused(spec, run_dir, "'position.selection' is", "no discretize stage comes before the position")


def test_a_truncated_weights_file_is_refused(copy):
    spec, run_dir, _ = copy
    for step in both(run_dir):
        weights = step / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:100])
        write_state(step, state_of(step))  # hashes rewritten: the file itself is read and refused
    assert_refused(spec, run_dir, "model.safetensors: cannot be read as safetensors")


def test_state_json_that_is_not_json_is_refused(copy):
    spec, run_dir, _ = copy
    older, newer = both(run_dir)
    (older / "state.json").write_text("{not json")
    (newer / "state.json").write_text("[" * 100_000)  # nested past Python's recursion limit
    output = assert_refused(spec, run_dir, "state.json: cannot be read as JSON")
    assert output.count("cannot be read as JSON") >= 2


@pytest.mark.slow  # a kernel rebuild or a fresh process: in .ci/run's long part
def test_a_thread_count_of_a_million_exits_2_in_a_real_process(copy):
    """The CLI as a user runs it (it used to crash with a segmentation fault, exit 139)."""
    spec, run_dir, _ = copy
    for step in both(run_dir):
        edit_position(step, threads=10 ** 6)
    env = {k: v for k, v in os.environ.items() if k != "HYBRIDC_DEBUG"}
    done = subprocess.run([sys.executable, "-m", "hybridc", "train", str(spec), "-o", str(run_dir), "--resume", "-q"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "'position.extra.threads' is 1000000" in done.stderr
    assert not (run_dir / "final").exists()


# ---- only the newest damaged: the previous checkpoint is used -----------------------------------------
@pytest.mark.parametrize("damage, said", [
    (lambda step: edit_position(step, stage_index=99), "'position.stage_index' is 99"),
    (lambda step: edit_position(step, stage_step=10 ** 6), "'position.stage_step' is 1000000"),
    (lambda step: edit_position(step, threads=10 ** 6), "'position.extra.threads' is 1000000"),
    (lambda step: edit_weights(step, lambda t: t.__setitem__("embed.sources.attn.weight", torch.zeros(7, 3))),
     "tensor 'embed.sources.attn.weight' is [7, 3]"),
    (lambda step: edit_position(step, rehash=False, stage_step=1), "does not match its hash"),
])
def test_a_damaged_newest_checkpoint_falls_back_to_the_previous(copy, damage, said):
    spec, run_dir, straight = copy
    damage(run_dir / "checkpoints" / NEWER)
    assert_falls_back(spec, run_dir, straight, said)


# ---- checkpoints of the previous release ---------------------------------------------------------------
def as_previous_release(step: Path) -> None:
    """state.json as earlier releases wrote it: no format number, a manifest of the other two files only."""
    state = state_of(step)
    del state["checkpoint"]
    del state["manifest"]["state.json"]
    write_state(step, state, rehash=False)


def test_a_checkpoint_of_the_previous_release_still_resumes(copy):
    spec, run_dir, straight = copy
    for step in both(run_dir):
        as_previous_release(step)
    assert_resumes_intact(spec, run_dir, straight)


def test_a_checkpoint_of_the_previous_release_is_checked_for_meaning(copy):
    spec, run_dir, _ = copy
    for step in both(run_dir):
        as_previous_release(step)
        edit_position(step, rehash=False, stage_index=99)
    assert_refused(spec, run_dir, "'position.stage_index' is 99")


def test_a_new_checkpoint_whose_manifest_lost_state_json_is_refused(copy):
    spec, run_dir, _ = copy
    for step in both(run_dir):
        state = state_of(step)
        del state["manifest"]["state.json"]
        write_state(step, state)
    assert_refused(spec, run_dir, "'manifest' has no hash for state.json")


# ---- check_state alone ---------------------------------------------------------------------------------
PLAN = ResumePlan((StageBound("search", "search", 8), StageBound("discretize", "discretize", 0),
                   StageBound("retrain", "retrain", 6), StageBound("more", "finetune", 10, exact=False)),
                  ("attn", "ssm"), 2)


def state(k, step, global_step, selection=None, **extra):
    return {"position": {"stage_index": k, "stage_step": step, "global_step": global_step, "selection": selection,
                         "extra": extra}}


@pytest.mark.parametrize("good, directory", [
    (state(0, 0, 0), "step-0"),
    (state(0, 8, 8, stage_steps=8, threads=1, metrics=3), "step-8"),  # a signal at the stage's last step
    (state(1, 0, 8), "step-8"),
    (state(2, 0, 8, ["ssm", "attn"]), "step-8"),
    (state(3, 4, 18, ["attn", "attn"], stage_steps=7), "step-18"),  # epochs: at most 10 steps
    (state(4, 0, 24, ["attn", "attn"]), "step-24"),
])
def test_check_state_accepts_what_a_run_writes(good, directory):
    position = check_state(good, PLAN, Path("/r/checkpoints") / directory)
    assert (position.stage_index, position.stage_step, position.global_step) == tuple(
        good["position"][k] for k in ("stage_index", "stage_step", "global_step"))


@pytest.mark.parametrize("bad, directory, said", [
    (state(5, 0, 0), "step-0", "'position.stage_index' is 5"),
    (state(4, 1, 30, ["attn", "attn"]), "step-30", "the run is past its last stage"),
    (state(1, 1, 9), "step-9", "'position.stage_step' is 1"),
    (state(3, 11, 20, ["attn", "attn"]), "step-20", "'position.stage_step' is 11"),
    (state(3, 8, 20, ["attn", "attn"], stage_steps=7), "step-20", "stage 3 ('more', finetune) has 7 steps"),
    (state(3, 1, 20, ["attn", "attn"], stage_steps=11), "step-20", "'position.extra.stage_steps' is 11"),
    (state(0, 4, 3), "step-3", "'position.global_step' is 3: less than 4"),
    (state(1, 0, 8, stage_steps=8), "step-8", "stage 1 ('discretize', discretize) trains nothing"),
    (state(0, 2, 2, metrics=-1), "step-2", "'position.extra.metrics' is -1"),
    ({"position": {"stage_index": 0, "stage_step": 0}}, "step-0", "'position.global_step' is missing"),
    ({"position": {**state(0, 0, 0)["position"], "surprise": 1}}, "step-0", "unknown fields 'surprise'"),
    ({"position": [0, 0, 0]}, "step-0", "'position' is [0, 0, 0]: a list, not a mapping"),
    ([], "step-0", "holds a list, not a JSON object"),
    ({**state(0, 0, 0), "spec": "abc", "components": ["ssm", "attn"]}, "step-0", "'components' is"),
    ({**state(0, 0, 0), "spec": 7}, "step-0", "'spec' is 7"),
])
def test_check_state_refuses_what_no_run_writes(bad, directory, said):
    with pytest.raises(DamagedCheckpoint) as info:
        check_state(bad, PLAN, Path("/r/checkpoints") / directory)
    assert str(info.value).startswith(f"/r/checkpoints/{directory}/state.json: ") and said in str(info.value)
    assert info.value.exit_code == 2 and info.value.hint


# ---- files that are not regular files: never read through, never hang ----------------------------------
def as_fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def as_link_outside(path: Path) -> None:
    outside = path.parent.parent.parent.parent / f"outside-{path.name}"
    outside.write_bytes(path.read_bytes())  # the same bytes: only being a link is wrong
    path.unlink()
    path.symlink_to(outside)


@pytest.mark.parametrize("name", ["optimizer.pt", "model.safetensors", "state.json"])
@pytest.mark.parametrize("damage, said", [(as_fifo, "a FIFO, not a regular file"),
                                          (as_link_outside, "is a symbolic link")])
def test_a_checkpoint_file_that_is_no_regular_file_is_refused_without_hanging(copy, name, damage, said):
    spec, run_dir, straight = copy
    damage(run_dir / "checkpoints" / NEWER / name)
    output = assert_falls_back(spec, run_dir, straight, said)
    assert f"{NEWER / Path(name)}" in output or name in output


def test_a_checkpoint_directory_that_is_a_link_is_not_followed(copy, tmp_path):
    spec, run_dir, straight = copy
    newer = run_dir / "checkpoints" / NEWER
    elsewhere = tmp_path / "elsewhere"
    newer.rename(elsewhere)
    newer.symlink_to(elsewhere, target_is_directory=True)
    result = resume(spec, run_dir)
    assert result.exit_code == 0, result.output
    assert f"checkpoint {NEWER}" not in result.output  # (not one of hybridc's checkpoints: not read at all)
    final = load_file(str(run_dir / "final" / "model.safetensors"))
    assert all(torch.equal(final[k], straight[k]) for k in final)


@pytest.mark.parametrize("name", ["metrics.jsonl", "spec.lock.yaml"])
@pytest.mark.parametrize("damage", [as_fifo, as_link_outside])
def test_a_run_file_that_is_no_regular_file_is_refused_without_hanging(copy, name, damage):
    spec, run_dir, _ = copy
    target = run_dir / name
    damage(target)
    kept = target.resolve().read_bytes() if damage is as_link_outside else None
    result = resume(spec, run_dir)
    assert result.exit_code in (1, 2), result.output
    assert "Traceback" not in result.output and "internal error" not in result.output, result.output
    assert name in result.output, result.output
    assert not (run_dir / "final").exists()
    if kept is not None:
        assert target.is_symlink() and target.resolve().read_bytes() == kept  # the link's target untouched

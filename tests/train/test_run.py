"""Whole runs: the run directory, resume after kill -9, final/ reload, baselines, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from hybridc.cli import main
from hybridc.errors import RunError, SpecError
from hybridc.models.hybrid import HybridModel
from hybridc.spec import load_spec
from tests.specs import write_spec
from tests.train.helpers import DATA, run, spec_text

STAGES = f"""\
    - {{name: search, search: 'darts(lr=0.1, alternate=true)', data: '{DATA}', steps: 12, eval_every: 4}}
    - {{name: discretize}}
    - {{name: retrain, steps: 6}}
    """


def test_run_directory_contents(tmp_path):
    result, _ = run(tmp_path, spec_text(STAGES, train_extra="  baselines: true\n"))
    d = result.run_dir
    for name in ("spec.yaml", "spec.lock.yaml", "plan.json", "graph.dot", "metrics.jsonl", "plots/loss.png",
                 "plots/alphas.png", "final/config.json", "final/model.safetensors", "final/README.md"):
        assert (d / name).exists(), name
    assert (d / "spec.yaml").read_text() == (tmp_path / "run.yaml").read_text()
    events = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
    train = [e for e in events if e["event"] == "train"]
    assert [e["global_step"] for e in train] == list(range(1, 19))
    assert all(e["alphas"] is not None and len(e["alphas"]) == 2 for e in train if e["stage"] == "search")
    assert [e["kind"] for e in train[:4]] == ["weights", "alphas", "weights", "alphas"]
    assert {"loss", "lr", "tokens_per_s"} <= set(train[0])
    evals = [e for e in events if e["event"] == "eval"]
    assert [e["global_step"] for e in evals if e["stage"] == "search"] == [4, 8, 12]
    assert "## Spec" in (d / "final" / "README.md").read_text()
    # baselines: each component alone, same budget, same test split
    models = [row["model"] for row in result.comparison]
    assert models[1:] == ["attn alone (same budget)", "ssm alone (same budget)"]
    base = json.loads((d / "baselines" / "ssm" / "plan.json").read_text())
    # (the alternating search updates the weights on 6 of its 12 steps: the component alone gets those 6)
    assert [s["steps"] for s in base["stages"]] == [6, 6] and all(s["kind"] == "finetune" for s in base["stages"])
    assert all(isinstance(row["loss"], float) for row in result.comparison)


def test_final_reloads_with_the_same_logits(tmp_path):
    result, _ = run(tmp_path, spec_text(f"- {{name: search, data: '{DATA}', steps: 5}}"))
    from hybridc.spec import load_spec
    from hybridc.models.hybrid import lower
    from hybridc.train.checkpoint import latest_checkpoint, load_checkpoint

    model = HybridModel.from_pretrained(result.final_dir).eval()
    path, position = latest_checkpoint(result.run_dir)
    assert position.stage_index == 1 and position.global_step == 5
    again = lower(load_spec(tmp_path / "run.yaml"), pretrained=False)
    load_checkpoint(path, again)
    ids = torch.randint(0, 32, (2, 16))
    with torch.no_grad():
        assert torch.equal(model(ids).logits, again.eval()(ids).logits)


def test_existing_run_is_never_overwritten_and_resume_checks_the_spec(tmp_path):
    text = spec_text(f"- {{name: finetune, data: '{DATA}', steps: 2}}", mixture="fixed([[0.5, 0.5], [0.5, 0.5]])")
    run(tmp_path, text)
    before = (tmp_path / "run" / "final" / "model.safetensors").read_bytes()
    with pytest.raises(RunError, match="already holds a run"):
        run(tmp_path, text)
    with pytest.raises(RunError, match="the spec changed"):
        run(tmp_path, text.replace("steps: 2", "steps: 3"), resume=True)
    assert (tmp_path / "run" / "final" / "model.safetensors").read_bytes() == before


@pytest.mark.slow  # CI's long part runs it (.ci/run): it keeps the default suite under 10 minutes
def test_resume_refuses_data_that_would_split_otherwise(tmp_path):
    """A resumed run keeps its splits: a data file changed since it began, or a run begun when splits were keyed
    by the path as written (its stage events say no identity), is refused before anything is written."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sat on the mat. " * 40)
    text = spec_text("- {name: finetune, data: 'text(corpus.txt, block=16)', steps: 1}",
                     mixture="fixed([[0.5, 0.5], [0.5, 0.5]])").replace("vocab_size: 32", "vocab_size: 260")
    run(tmp_path, text.replace("name: tiny\n", "name: tiny\ntokenizer: bytes\n"))
    metrics = tmp_path / "run" / "metrics.jsonl"
    before = metrics.read_bytes()
    corpus.write_text("the dog sat on the mat. " * 40)
    with pytest.raises(RunError, match="would split text\\(corpus.txt, block=16\\) otherwise than it did: the data "
                                       "is not what the run began with"):
        run(tmp_path, text.replace("name: tiny\n", "name: tiny\ntokenizer: bytes\n"), resume=True)
    corpus.write_text("the cat sat on the mat. " * 40)
    events = [json.loads(line) for line in before.decode().splitlines()]
    metrics.write_text("".join(json.dumps({k: v for k, v in e.items() if k != "data_identity"}) + "\n" for e in events))
    old = metrics.read_bytes()
    with pytest.raises(RunError, match="keyed data splits by the path as written"):
        run(tmp_path, text.replace("name: tiny\n", "name: tiny\ntokenizer: bytes\n"), resume=True)
    assert metrics.read_bytes() == old


def test_resume_refuses_the_same_components_in_another_order(tmp_path):
    """The order of components is part of the model (alphas and weights are indexed by it)."""
    from tests.train.helpers import COMPONENTS

    text = spec_text(f"- {{name: finetune, data: '{DATA}', steps: 2}}", mixture="fixed([[0.25, 0.75], [0.5, 0.5]])")
    text = text.replace("name: tiny\n", "name: tiny\ntokenizer: attn\n")  # the default would follow the order
    run(tmp_path, text)
    body = COMPONENTS.split("components:\n")[1]
    attn, ssm = body[: body.index("  ssm:")], body[body.index("  ssm:"):]
    swapped = text.replace(body, ssm + attn)
    assert swapped != text and load_spec(write_spec(tmp_path, swapped, "swapped.yaml")).names == ("ssm", "attn")
    with pytest.raises(RunError, match="the spec changed"):
        run(tmp_path, swapped, resume=True)


def _train_process(spec, out, resume=False):
    args = [sys.executable, "-m", "hybridc", "train", str(spec), "-o", str(out), "-q"] + (["--resume"] if resume else [])
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "HYBRIDC_DEBUG": "1"})


@pytest.mark.slow  # CI's long part runs it (.ci/run): it keeps the default suite under 10 minutes
def test_kill_9_then_resume_gives_bit_identical_weights(tmp_path):
    text = spec_text(STAGES.replace("steps: 12", "steps: 40").replace("steps: 6", "steps: 20"),
                     train_extra="").replace("checkpoint_every: 0", "checkpoint_every: 5")
    spec = write_spec(tmp_path, text)
    straight = _train_process(spec, tmp_path / "straight")
    assert straight.wait(timeout=600) == 0, straight.stderr.read()
    killed = _train_process(spec, tmp_path / "killed")
    checkpoints = tmp_path / "killed" / "checkpoints"
    deadline = time.time() + 300
    while time.time() < deadline:
        done = [p for p in checkpoints.glob("step-*")] if checkpoints.exists() else []
        if any(int(p.name[5:]) >= 10 for p in done):
            break
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert not (tmp_path / "killed" / "final").exists(), "the run finished before it was killed"
    resumed = _train_process(spec, tmp_path / "killed", resume=True)
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    assert "resuming from step-" in err
    a = load_file(str(tmp_path / "straight" / "final" / "model.safetensors"))
    b = load_file(str(tmp_path / "killed" / "final" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    lines = lambda d: [json.loads(x) for x in (tmp_path / d / "metrics.jsonl").read_text().splitlines()]
    strip = lambda events: [{k: v for k, v in e.items() if k != "tokens_per_s"} for e in events]
    assert strip(lines("straight")) == strip(lines("killed"))


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    text = spec_text(f"- {{name: finetune, data: '{DATA}', steps: 30, lr: 1e30, grad_clip: null}}",
                     mixture="fixed([[0.5, 0.5], [0.5, 0.5]])").replace("checkpoint_every: 0", "checkpoint_every: 1")
    with pytest.raises(RunError) as info:
        run(tmp_path, text)
    message = str(info.value)
    assert "stage 'finetune' step" in message and ("nan" in message or "inf" in message or "non-finite" in message)
    assert "last good checkpoint" in info.value.hint
    from hybridc.train.checkpoint import latest_checkpoint

    path, position = latest_checkpoint(tmp_path / "run")
    state = load_file(str(path / "model.safetensors"))
    assert all(torch.isfinite(t).all() for t in state.values())


CHECKPOINTED = spec_text(f"- {{name: finetune, data: '{DATA}', steps: 6}}",
                         mixture="fixed([[0.5, 0.5], [0.5, 0.5]])").replace("checkpoint_every: 0", "checkpoint_every: 2")


def _second_save_fails(monkeypatch, error: Exception) -> None:
    """torch.save in checkpoints raises ``error`` the second time (the first checkpoint is written)."""
    import hybridc.train.checkpoint as ckpt

    real_save = torch.save
    calls = {"n": 0}

    def save(obj, path, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise error
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(ckpt.torch, "save", save)


def test_disk_full_while_checkpointing_keeps_the_previous_one(tmp_path, monkeypatch):
    import hybridc.train.checkpoint as ckpt

    _second_save_fails(monkeypatch, OSError(28, "No space left on device"))
    with pytest.raises(RunError) as info:
        run(tmp_path, CHECKPOINTED)
    assert "No space left on device" in str(info.value) and "step-2" in info.value.hint
    dirs = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert dirs == ["step-2"]
    assert ckpt.read_position(tmp_path / "run" / "checkpoints" / "step-2") is not None


def test_a_full_disk_seen_by_torch_save_is_a_clear_error_and_leaves_no_temporary_files(tmp_path, monkeypatch):
    """torch.save reports a full disk as RuntimeError ("unexpected pos"), not OSError; temporary checkpoint
    directories of a crash are removed by the next checkpoint."""
    _second_save_fails(monkeypatch, RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 64 vs 0"))
    with pytest.raises(RunError, match="could not write checkpoint step-4: .*unexpected pos"):
        run(tmp_path, CHECKPOINTED)
    root = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in root.iterdir()) == ["step-2"]
    monkeypatch.undo()
    (root / ".tmp-step-4-12345").mkdir()  # as a kill -9 mid-write leaves it
    (root / ".tmp-step-4-12345" / "model.safetensors").write_bytes(b"x" * 1000)
    result, _ = run(tmp_path, CHECKPOINTED, resume=True)
    assert result.test is not None and not list(root.glob(".tmp-*"))


def test_corrupt_checkpoint_falls_back_to_the_previous(tmp_path):
    from hybridc.train.checkpoint import latest_checkpoint

    text = spec_text(f"- {{name: finetune, data: '{DATA}', steps: 4}}",
                     mixture="fixed([[0.5, 0.5], [0.5, 0.5]])").replace("checkpoint_every: 0", "checkpoint_every: 2")
    run(tmp_path, text)
    newest = tmp_path / "run" / "checkpoints" / "step-4"
    weights = newest / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    warnings = []
    path, position = latest_checkpoint(tmp_path / "run", warn=warnings.append)
    assert path.name == "step-2" and "corrupt" in warnings[0]


def test_empty_and_missing_data_are_located_errors(tmp_path):
    (tmp_path / "tiny.txt").write_text("hi")
    text = spec_text("- {name: finetune, data: 'text(tiny.txt, block=16)', steps: 2}",
                     mixture="fixed([[0.5, 0.5], [0.5, 0.5]])").replace("name: tiny\n", "name: tiny\ntokenizer: bytes\n")
    text = text.replace("vocab_size: 32", "vocab_size: 259")
    with pytest.raises(SpecError) as info:
        run(tmp_path, text)
    (d,) = info.value.diagnostics
    assert d.location.line == 17 and "fewer than" in d.message
    result = CliRunner().invoke(main, ["train", str(write_spec(tmp_path, text.replace("tiny.txt", "gone.txt"), "g.yaml")),
                                       "-o", str(tmp_path / "g"), "-q"])
    assert result.exit_code == 2 and "no such data file 'gone.txt'" in result.output
    assert not (tmp_path / "g").exists()


def test_train_and_eval_commands(tmp_path):
    spec = write_spec(tmp_path, spec_text(f"- {{name: search, data: '{DATA}', steps: 3}}"))
    result = CliRunner().invoke(main, ["train", str(spec), "-o", str(tmp_path / "r"), "-q"])
    assert result.exit_code == 0, result.output
    assert "test split" in result.output and "hybrid" in result.output
    assert "attn alone" in result.output and "train.baselines" in result.output
    result = CliRunner().invoke(main, ["eval", str(tmp_path / "r"), "--data", DATA])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "r" / "metrics.jsonl").read_text().splitlines()[-1])
    assert f"loss: {metrics['loss']:.6g}" in result.output
    bad = CliRunner().invoke(main, ["eval", str(tmp_path / "r"), "--data", "recal()"])
    assert bad.exit_code == 2 and "--data:1:1: error: unknown data source 'recal'" in bad.output


@pytest.mark.slow  # CI's long part runs it (.ci/run), beside the kill -9 resume test
def test_sigterm_saves_a_checkpoint_and_resume_matches(tmp_path):
    text = spec_text(STAGES.replace("steps: 12", "steps: 40").replace("steps: 6", "steps: 10"))
    spec = write_spec(tmp_path, text)
    straight = _train_process(spec, tmp_path / "straight")
    assert straight.wait(timeout=600) == 0
    stopped = _train_process(spec, tmp_path / "stopped")
    metrics = tmp_path / "stopped" / "metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and not (metrics.exists() and metrics.read_text().count('"train"') >= 5):
        time.sleep(0.05)
    stopped.send_signal(signal.SIGTERM)
    out, err = stopped.communicate(timeout=300)
    assert stopped.returncode == 130, err
    assert "stopped by a signal" in err and "--resume" in err and "Traceback" not in err
    assert not (tmp_path / "stopped" / "final").exists()
    resumed = _train_process(spec, tmp_path / "stopped", resume=True)
    assert resumed.wait(timeout=600) == 0
    a = load_file(str(tmp_path / "straight" / "final" / "model.safetensors"))
    b = load_file(str(tmp_path / "stopped" / "final" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_out_of_memory_names_the_stage_and_suggests_a_batch_size(tmp_path, monkeypatch):
    from hybridc.models.hybrid import HybridModel

    def exhausted(self, *args, **kwargs):
        raise torch.OutOfMemoryError("CPU out of memory")

    monkeypatch.setattr(HybridModel, "forward", exhausted)
    text = spec_text(f"- {{name: finetune, data: '{DATA}', steps: 2, batch_size: 8}}",
                     mixture="fixed([[0.5, 0.5], [0.5, 0.5]])")
    with pytest.raises(RunError) as info:
        run(tmp_path, text)
    assert "stage 'finetune' step 1: out of memory with batch_size 8" in str(info.value)
    assert "batch_size: 4, grad_accum: 2" in info.value.hint


def test_scan_backend_is_selectable_and_agrees(tmp_path):
    text = spec_text(f"- {{name: finetune, data: '{DATA}', steps: 3}}", mixture="fixed([[0.5, 0.5], [0.5, 0.5]])")
    chunked, _ = run(tmp_path, text, name="chunked", scan="chunked")
    reference, _ = run(tmp_path, text, name="reference", scan="reference")
    a = load_file(str(chunked.final_dir / "model.safetensors"))
    b = load_file(str(reference.final_dir / "model.safetensors"))
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-4
    with pytest.raises(ValueError):
        from hybridc.models.hybrid import HybridModel

        model = HybridModel.from_pretrained(chunked.final_dir)
        model.set_scan_backend("fast-please")
        model(torch.ones(1, 4, dtype=torch.long))


def test_resume_never_writes_over_a_directory_that_is_not_a_run(tmp_path):
    """(--resume follows our own hint, so it must not make a user's directory a run.)"""
    mine = tmp_path / "run"
    mine.mkdir()
    own = {"spec.yaml": "my notes\n", "metrics.jsonl": "{\"mine\": 1}\n", "plan.json": "{}\n"}
    for name, text in own.items():
        (mine / name).write_text(text)
    text = spec_text(f"- {{name: finetune, data: '{DATA}', steps: 2}}", mixture="fixed([[0.5, 0.5], [0.5, 0.5]])")
    for resume in (False, True):
        with pytest.raises(RunError, match="holds no hybridc run"):
            run(tmp_path, text, resume=resume)
    assert {p.name: p.read_text() for p in mine.iterdir()} == own


def test_resume_checks_the_spec_against_the_checkpoint_not_only_the_lock_file(tmp_path):
    text = spec_text(f"- {{name: finetune, data: '{DATA}', steps: 4}}", mixture="fixed([[0.5, 0.5], [0.5, 0.5]])")
    run(tmp_path, text)
    (tmp_path / "run" / "spec.lock.yaml").unlink()
    for changed in (text.replace("steps: 4", "steps: 4, lr: 0.5"), text.replace("examples=256", "examples=512")):
        assert changed != text
        with pytest.raises(RunError, match="written for another spec"):
            run(tmp_path, changed, resume=True)
    result, _ = run(tmp_path, text, resume=True)  # the same spec resumes (from the last checkpoint)
    assert result.test is not None


def test_resume_refuses_when_every_checkpoint_is_damaged(tmp_path):
    """It used to restart from scratch without a word, truncating metrics.jsonl."""
    text = spec_text(f"- {{name: finetune, data: '{DATA}', steps: 2}}", mixture="fixed([[0.5, 0.5], [0.5, 0.5]])")
    run(tmp_path, text)
    metrics = (tmp_path / "run" / "metrics.jsonl").read_text()
    for step in (tmp_path / "run" / "checkpoints").iterdir():
        (step / "model.safetensors").write_bytes(b"damaged")
    with pytest.raises(RunError, match="every checkpoint .* is incomplete or damaged"):
        run(tmp_path, text, resume=True)
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == metrics


def test_two_processes_never_train_one_run_directory(tmp_path):
    import fcntl

    text = spec_text(f"- {{name: finetune, data: '{DATA}', steps: 2}}", mixture="fixed([[0.5, 0.5], [0.5, 0.5]])")
    run(tmp_path, text)
    metrics = (tmp_path / "run" / "metrics.jsonl").read_text()
    with open(tmp_path / "run" / ".lock", "a+") as other:  # another process holding the run
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(RunError, match="is being trained by"):
            run(tmp_path, text, resume=True)
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == metrics
    run(tmp_path, text, resume=True)  # once released, resuming works


def test_a_signal_outside_the_training_steps_stops_at_once():
    from hybridc.train.run import StopSignals

    with StopSignals() as signals:
        with pytest.raises(KeyboardInterrupt):  # building data, evaluating, saving: nothing to finish
            os.kill(os.getpid(), signal.SIGTERM)
        signals.stepping = True
        os.kill(os.getpid(), signal.SIGTERM)  # inside the steps: finish the step, checkpoint, stop
        assert signals.received
        with pytest.raises(KeyboardInterrupt):  # a second one means it
            os.kill(os.getpid(), signal.SIGTERM)


def test_a_run_that_fails_before_training_leaves_nothing_that_blocks_a_rerun(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("too short")
    text = spec_text(f"- {{name: finetune, data: 'text({corpus}, block=16)', steps: 2}}",
                     mixture="fixed([[0.5, 0.5], [0.5, 0.5]])").replace("name: tiny\n", "name: tiny\ntokenizer: bytes\n")
    text = text.replace("vocab_size: 32", "vocab_size: 260")
    with pytest.raises((SpecError, RunError)):
        run(tmp_path, text)
    assert not (tmp_path / "run").exists()
    corpus.write_text("enough text to cut into several blocks of sixteen bytes each, " * 20)
    result, _ = run(tmp_path, text)  # no --resume needed, nothing in the way
    assert result.test is not None

"""`train --report-to`: the run's metrics reach Accelerate's trackers beside metrics.jsonl.

The TensorBoard files are read back with TensorBoard's own reader (an independent reference), and every
scalar is compared with the event of metrics.jsonl it came from.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from hybridc.cli import main
from hybridc.errors import RunError
from hybridc.train.tracking import event_scalars, flat_config, parse_report_to
from tests.specs import write_spec
from tests.train.helpers import DATA, spec_text

STAGES = f"""\
    - {{name: search, search: 'darts(lr=0.1, alternate=true)', data: '{DATA}', steps: 4, eval_every: 2}}
    - {{name: retrain, steps: 1}}
    """


def _scalars(logdir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = sorted(logdir.rglob("events.out.tfevents.*"))
    assert files, f"no TensorBoard event file under {logdir}"
    values: dict[str, dict[int, float]] = {}
    for file in files:
        acc = EventAccumulator(str(file), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            for e in acc.Scalars(tag):
                values.setdefault(tag, {})[e.step] = e.value
    return values


def test_report_to_tensorboard_writes_every_metric_beside_metrics_jsonl(tmp_path):
    pytest.importorskip("tensorboard")
    spec = write_spec(tmp_path, spec_text(STAGES), "run.yaml")
    result = CliRunner().invoke(main, ["train", str(spec), "-o", str(tmp_path / "run"), "-q", "--report-to",
                                       "tensorboard"])
    assert result.exit_code == 0, result.output
    run = tmp_path / "run"
    events = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    logged = _scalars(run / "logs" / "tiny")
    train = [e for e in events if e["event"] == "train"]
    weights = [e for e in train if e["kind"] != "alphas"]
    alphas = [e for e in train if e["kind"] == "alphas"]
    assert len(train) == 5 and weights and alphas  # (the alternating search's odd steps are alpha steps)
    assert logged["train/loss"] == pytest.approx({e["global_step"]: e["loss"] for e in weights}, rel=1e-6)
    assert logged["search/loss"] == pytest.approx({e["global_step"]: e["loss"] for e in alphas}, rel=1e-6)
    assert logged["train/lr"] == pytest.approx({e["global_step"]: e["lr"] for e in train}, rel=1e-6)
    searched = [e for e in train if e["alphas"] is not None]
    for block in range(2):
        for j, name in enumerate(("attn", "ssm")):
            assert logged[f"alphas/block{block}/{name}"] == pytest.approx(
                {e["global_step"]: e["alphas"][block][j] for e in searched}, abs=1e-6)
    valid = [e for e in events if e["event"] == "eval" and e["split"] == "valid"]
    assert logged["valid/loss"] == pytest.approx({e["global_step"]: e["loss"] for e in valid}, rel=1e-6)
    (test,) = [e for e in events if e["event"] == "test"]
    assert logged["test/accuracy"] == pytest.approx({5: test["accuracy"]}, rel=1e-6)  # at the last step
    # the spec as the run's hyper-parameters, beside the event file
    (hparams,) = (run / "logs" / "tiny").rglob("hparams.yml")
    assert "train.stages.search.lr" in hparams.read_text()


def test_report_to_refuses_what_it_cannot_do_before_anything_runs(tmp_path, monkeypatch):
    import accelerate.tracking

    monkeypatch.setattr(accelerate.tracking, "get_available_trackers", lambda: [])
    with pytest.raises(RunError, match="tensorboard is not installed") as err:
        parse_report_to("tensorboard")
    assert err.value.hint == "pip install tensorboard"
    with pytest.raises(RunError, match="unknown tracker tensorbord"):
        parse_report_to("tensorbord")
    assert parse_report_to("none") == parse_report_to("") == ()
    spec = write_spec(tmp_path, spec_text(STAGES), "run.yaml")
    result = CliRunner().invoke(main, ["train", str(spec), "-o", str(tmp_path / "run"), "--report-to", "wandb"])
    assert result.exit_code == 1 and "wandb is not installed" in result.output and "pip install wandb" in result.output
    assert not (tmp_path / "run").exists()


def test_event_scalars_and_flat_config():
    event = {"event": "train", "kind": "joint", "loss": 1.5, "lr": 1e-3, "tokens_per_s": 10.0, "global_step": 3,
             "alphas": [[0.25, 0.75]], "expected_cost": 0.9, "budget_multiplier": 0.0}
    assert event_scalars(event, ["a", "b"]) == {
        "train/loss": 1.5, "train/lr": 1e-3, "train/tokens_per_s": 10.0, "alphas/block0/a": 0.25,
        "alphas/block0/b": 0.75, "search/expected_cost": 0.9, "search/budget_multiplier": 0.0}
    assert event_scalars({"event": "eval", "split": "valid", "loss": "nan", "accuracy": 0.5}, []) == {
        "valid/accuracy": 0.5}
    assert event_scalars({"event": "stage", "steps": 4}, []) == {}
    config = flat_config({"train": {"seed": 0, "stages": [{"name": "s", "betas": [0.9, 0.99], "grad_clip": None}]}})
    assert config == {"train.seed": 0, "train.stages.s.name": "s", "train.stages.s.betas": "[0.9, 0.99]",
                      "train.stages.s.grad_clip": None}

"""A search's schedule: DASH's annealed temperature (``tau_end``) and the alphas' warm-up (``warmup``)."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file

from hybridc.errors import SpecError
from hybridc.models.hybrid import lower
from hybridc.spec.model import Search
from tests.train.helpers import DATA, run, spec_text
from tests.train.test_stages import stage_setup, take_steps


@given(tau=st.floats(0.05, 10), tau_end=st.floats(0.05, 10), steps=st.integers(2, 500))
@settings(max_examples=60, deadline=None)
def test_the_anneal_is_exponential_from_tau_to_tau_end(tau, tau_end, steps):
    search = Search("dash", tau=tau, tau_end=tau_end)
    assert search.tau_at(0, steps) == pytest.approx(tau)
    assert search.tau_at(steps - 1, steps) == pytest.approx(tau_end)
    # the log-temperature falls (or rises) by the same amount every step
    logs = [math.log(search.tau_at(k, steps)) for k in range(steps)]
    gaps = [b - a for a, b in zip(logs, logs[1:])]
    assert gaps == pytest.approx([math.log(tau_end / tau) / (steps - 1)] * (steps - 1), abs=1e-9)
    assert Search("dash", tau=tau).tau_at(steps // 2, steps) == tau  # no tau_end: tau throughout


def test_each_step_samples_at_its_own_temperature(tmp_path, monkeypatch):
    rs, stage, data = stage_setup(tmp_path, f"- {{name: search, search: 'dash(tau=2.0, tau_end=0.5)', data: '{DATA}', "
                                            "steps: 5, batch_size: 2}")
    seen = []
    real = torch.nn.functional.gumbel_softmax
    monkeypatch.setattr(torch.nn.functional, "gumbel_softmax",
                        lambda logits, tau, **kw: seen.append(tau) or real(logits, tau=tau, **kw))
    take_steps(lower(rs), stage, data, 5)
    per_step = sorted(set(seen), reverse=True)
    assert per_step == pytest.approx([2.0 * 0.25 ** (k / 4) for k in range(5)])  # 2.0, 1.41, 1.0, 0.71, 0.5


@pytest.mark.parametrize("algorithm", ["darts(lr=0.5, warmup=3)", "dash(lr=0.5, warmup=3)", "gaea(lr=0.5, warmup=3)"])
def test_the_alphas_stay_put_during_warmup_then_move(tmp_path, algorithm):
    rs, stage, data = stage_setup(tmp_path, f"- {{name: search, search: '{algorithm}', data: '{DATA}', steps: 5}}")
    model = lower(rs)
    start = model.alphas().clone()
    before = {n: p.detach().clone() for n, p in model.named_parameters() if "mix" not in n}
    results = take_steps(model, stage, data, 3)
    assert [r.kind for r in results] == ["weights"] * 3
    assert torch.equal(model.alphas(), start)
    assert any(not torch.equal(p.detach(), before[n]) for n, p in model.named_parameters() if n in before)

    model = lower(rs)
    results = take_steps(model, stage, data, 5)
    assert [r.kind for r in results] == ["weights"] * 3 + ["joint"] * 2
    assert not torch.allclose(model.alphas(), start)


def test_an_annealed_warmed_up_search_resumes_exactly(tmp_path):
    """Stopped after step 5 and resumed, the run ends bit-identical to one never stopped: the temperature
    and the warm-up follow the stage's step, not the steps taken since the process started."""
    text = spec_text(f"- {{name: search, search: 'dash(lr=0.3, tau=3.0, tau_end=0.3, warmup=6)', data: '{DATA}', "
                     "steps: 8, batch_size: 4}").replace("checkpoint_every: 0", "checkpoint_every: 5")
    straight, _ = run(tmp_path, text, name="straight")
    shutil.copytree(straight.run_dir, tmp_path / "stopped")
    stopped = tmp_path / "stopped"
    shutil.rmtree(stopped / "final")
    shutil.rmtree(stopped / "checkpoints" / "step-8")  # step-5 is left: the stop falls inside the warm-up
    lines = (stopped / "metrics.jsonl").read_text().splitlines()
    kept = [line for line in lines if json.loads(line).get("global_step", 0) <= 5 and json.loads(line)["event"] != "test"]
    (stopped / "metrics.jsonl").write_text("\n".join(kept) + "\n")
    resumed, _ = run(tmp_path, text, name="stopped", resume=True)
    a = load_file(str(straight.run_dir / "final" / "model.safetensors"))
    b = load_file(str(resumed.run_dir / "final" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    logged = [json.loads(line) for line in (stopped / "metrics.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in logged if r["event"] == "train"] == ["weights"] * 6 + ["joint"] * 2


@pytest.mark.parametrize("search, message", [
    ("dash(alternate=true, warmup=4)", "warmup= needs a joint search"),
    ("darts(warmup=10)", "warmup=10 leaves no alpha step in stage 'search' of 10 steps"),
    ("dash(tau_end=0)", "'tau_end' of dash\(\) must be >= 0.0001, not 0"),
    ("darts(tau_end=0.5)", "darts\\(\\) has no argument 'tau_end'"),
    ("gaea(warmup=-1)", "'warmup' of gaea\(\) must be >= 0"),
])
def test_bad_schedules_are_located_errors(tmp_path, search, message):
    stage = f"- {{name: search, search: '{search}', data: '{DATA}', steps: 10}}"
    with pytest.raises(SpecError, match=message) as raised:
        stage_setup(tmp_path, stage)
    (diagnostic,) = raised.value.diagnostics
    lines = spec_text(stage).splitlines()
    line = next(k for k, text in enumerate(lines, 1) if "name: search" in text)
    assert diagnostic.location.line == line
    at = lines[line - 1][diagnostic.location.col - 1:]
    assert at.startswith(tuple(part.strip().split("=")[0] for part in search.replace("(", ",").split(",")) + ("0", "-1"))


@pytest.mark.parametrize("search", ["dash(lr=0.05, alternate=false, tau=1.0, tau_end=0.1, warmup=20)",
                                    "darts(lr=0.05, alternate=false, warmup=5)", "gaea(lr=0.01, alternate=false)"])
def test_the_schedule_round_trips_through_the_canonical_text(tmp_path, search):
    _, stage, _ = stage_setup(tmp_path, f"- {{name: search, search: '{search}', data: '{DATA}', steps: 40}}")
    assert str(stage.search) == search

"""Stage kinds, frozen groups, search algorithms and the discretize -> retrain path."""

from __future__ import annotations

import json
import re

import pytest
import torch

from hybridc.models.hybrid import HybridModel, lower
from hybridc.spec import load_spec
from hybridc.train.loop import build_optimizers, freeze_for, train_steps
from hybridc.data import build_data
from tests.specs import write_spec
from tests.train.helpers import DATA, run, spec_text


def snapshot(model):
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def changed_groups(model, before):
    from hybridc.models.names import group_of

    out = set()
    for name, p in model.named_parameters():
        if not torch.equal(p.detach(), before[name]):
            out.add(group_of(name))
    return out


def stage_setup(tmp_path, stages, mixture="search"):
    rs = load_spec(write_spec(tmp_path, spec_text(stages, mixture)))
    stage = rs.spec.train.stages[0]
    data = build_data(stage.data, task=rs.spec.task, tokenizer=None, seed=0, base_dir=tmp_path,
                      location=rs.source_map.at("train"))
    return rs, stage, data


def take_steps(model, stage, data, steps):
    freeze_for(model, stage)
    optim = build_optimizers(model, stage, steps)
    results = list(train_steps(model, stage, steps, 0, data, optim, seed=0, device=torch.device("cpu"),
                               backward=lambda loss: loss.backward(),
                               clip=lambda params, norm: torch.nn.utils.clip_grad_norm_(params, norm)))
    return results


@pytest.mark.parametrize("stages, expected", [
    (f"- {{name: align, data: '{DATA}', steps: 3}}", {"projectors", "embeddings", "alphas"}),
    (f"- {{name: search, data: '{DATA}', steps: 3}}", {"components", "projectors", "embeddings", "head", "alphas"}),
    (f"- {{name: finetune, data: '{DATA}', steps: 3}}", {"components", "projectors", "embeddings", "head"}),
    (f"- {{name: retrain, data: '{DATA}', steps: 3, train: [head]}}", {"head"}),
    (f"- {{name: x, kind: finetune, data: '{DATA}', steps: 3, train: [components]}}", {"components"}),
])
def test_only_the_named_groups_change(tmp_path, stages, expected):
    rs, stage, data = stage_setup(tmp_path, stages)
    model = lower(rs)
    before = snapshot(model)
    take_steps(model, stage, data, 3)
    assert changed_groups(model, before) == expected


@pytest.mark.parametrize("algorithm", ["darts(lr=0.5)", "dash(lr=0.5, tau=0.7)", "gaea(lr=0.5)"])
@pytest.mark.parametrize("alternate", [False, True])
def test_alphas_stay_on_the_simplex_and_move(tmp_path, algorithm, alternate):
    search = algorithm.replace(")", f", alternate={'true' if alternate else 'false'})")
    rs, stage, data = stage_setup(tmp_path, f"- {{name: search, search: '{search}', data: '{DATA}', steps: 6}}")
    model = lower(rs)
    start = model.alphas().clone()
    results = take_steps(model, stage, data, 6)
    alphas = model.alphas()
    assert torch.all(alphas >= 0) and torch.allclose(alphas.sum(-1), torch.ones(2), atol=1e-6)
    assert not torch.allclose(alphas, start)
    kinds = [r.kind for r in results]
    assert kinds == (["weights", "alphas"] * 3 if alternate else ["joint"] * 6)
    assert all(m.gumbel_tau is None and m.leaf is None for m in (b.mix for b in model.blocks))


def test_gaea_update_follows_the_reference_rule():
    from hybridc.train.search import gaea_update

    a = torch.tensor([0.5, 0.3, 0.2])
    g = torch.tensor([1.0, -2.0, 100.0])
    out = gaea_update(a, g, lr=0.5)
    expected = a * torch.exp(torch.clamp(-0.5 * g, -9, 9))
    expected = torch.clamp(expected, min=1e-5)
    assert torch.allclose(out, expected / expected.sum())


def rows(split) -> set[bytes]:
    return {r.numpy().tobytes() for r in split.input_ids}


def seen_by_kind(model, stage, data, steps) -> dict[str, set[bytes]]:
    """The input rows each kind of step (weights / alphas) fed to the model."""
    seen: dict[str, set[bytes]] = {"weights": set(), "alphas": set()}
    step = {"i": 0}
    original = model.forward

    def spy(*args, **kwargs):
        kind = "weights" if step["i"] % 2 == 0 else "alphas"
        seen[kind] |= {r.numpy().tobytes() for r in kwargs["input_ids"]}
        return original(*args, **kwargs)

    model.forward = spy
    optim = build_optimizers(model, stage, steps)
    for _ in train_steps(model, stage, steps, 0, data, optim, seed=0, device=torch.device("cpu"),
                         backward=lambda loss: loss.backward(), clip=torch.nn.utils.clip_grad_norm_):
        step["i"] += 1
    return seen


def test_the_search_split_is_part_of_train_disjoint_from_valid_and_test(tmp_path):
    rs, stage, data = stage_setup(tmp_path, f"- {{name: search, search: 'darts(alternate=true)', data: '{DATA}', steps: 4}}")
    assert stage.search.heldout == 0.1  # the default
    weights, search = data.search_split(0.1, seed=0)
    train, valid, test = rows(data.train), rows(data.valid), rows(data.test)
    assert len(search) == round(0.1 * len(data.train)) and len(weights) + len(search) == len(data.train)
    assert rows(weights) | rows(search) == train and not rows(weights) & rows(search)
    assert not rows(search) & (valid | test)
    again = data.search_split(0.1, seed=0)[1]
    assert torch.equal(again.input_ids, search.input_ids)  # a pure function of (seed, source)
    assert not torch.equal(data.search_split(0.1, seed=1)[1].input_ids, search.input_ids)


def test_alternating_alpha_steps_read_the_search_split_and_never_valid(tmp_path):
    rs, stage, data = stage_setup(tmp_path, f"- {{name: search, search: 'darts(alternate=true, heldout=0.2)', data: '{DATA}', "
                                            "steps: 40, batch_size: 4}")
    weights, search = data.search_split(0.2, seed=0)
    seen = seen_by_kind(lower(rs), stage, data, 40)
    assert seen["alphas"] and seen["alphas"] <= rows(search)
    assert seen["weights"] and seen["weights"] <= rows(weights)
    assert not (seen["alphas"] | seen["weights"]) & (rows(data.valid) | rows(data.test))
    assert seen["alphas"] == rows(search)  # 20 alpha steps x 4 sequences cover the search split


def test_heldout_0_alternates_over_the_training_stream(tmp_path):
    rs, stage, data = stage_setup(tmp_path, f"- {{name: search, search: 'darts(alternate=true, heldout=0)', data: '{DATA}', "
                                            "steps: 6, batch_size: 4}")
    seen = seen_by_kind(lower(rs), stage, data, 6)
    assert seen["alphas"] <= rows(data.train) and seen["weights"] <= rows(data.train)
    assert not seen["alphas"] & seen["weights"]  # consecutive batches of one epoch: different sequences
    assert not seen["alphas"] & rows(data.valid)


def test_heldout_needs_alternate(tmp_path):
    from hybridc.errors import SpecError

    with pytest.raises(SpecError, match="heldout= has no effect without alternate=true"):
        stage_setup(tmp_path, f"- {{name: search, search: 'darts(heldout=0.2)', data: '{DATA}', steps: 4}}")
    _, stage, _ = stage_setup(tmp_path, f"- {{name: search, search: darts, data: '{DATA}', steps: 4}}")  # a bare word
    assert str(stage.search) == "darts(lr=0.05, alternate=false)"
    _, stage, _ = stage_setup(tmp_path, f"- {{name: search, data: '{DATA}', steps: 4}}")  # no search: the default
    assert str(stage.search) == "dash(lr=0.05, alternate=false, tau=1.0)"


def test_every_stage_kind_runs_and_discretize_prunes(tmp_path):
    stages = f"""\
        - {{name: align, data: '{DATA}', steps: 4}}
        - {{name: search, search: 'gaea(lr=0.3)', steps: 4}}
        - {{name: rewind}}
        - {{name: finetune, steps: 3}}
        - {{name: discretize}}
        - {{name: retrain, steps: 3}}
        """
    result, messages = run(tmp_path, spec_text(stages))
    assert result.selection is not None and len(result.selection) == 2
    model = HybridModel.from_pretrained(result.final_dir)
    assert model.graph.selection == result.selection
    assert sum(p.numel() for p in model.parameters()) == model.graph.total_params
    continuous = lower(load_spec(tmp_path / "run.yaml"))
    assert model.graph.total_params < continuous.graph.total_params
    events = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds.count("stage") == 4 and "discretize" in kinds and "rewind" in kinds and kinds[-1] == "test"
    assert [e["selection"] for e in events if e["event"] == "discretize"] == [list(result.selection)]
    assert any(m.startswith("discretized:") for m in messages)


def test_rewind_restores_component_weights_and_keeps_alphas(tmp_path):
    from hybridc.train.run import Run, TrainOptions

    rs = load_spec(write_spec(tmp_path, spec_text(f"- {{name: search, data: '{DATA}', steps: 3}}\n- {{name: rewind}}")))
    runner = Run(rs, TrainOptions(out_dir=tmp_path / "r", quiet=True), say=lambda _: None)
    model = lower(rs)
    initial = snapshot(model)
    _, stage, data = stage_setup(tmp_path, f"- {{name: search, data: '{DATA}', steps: 3}}")
    take_steps(model, stage, data, 3)
    trained = snapshot(model)
    runner.rewind(model)
    from hybridc.models.names import group_of

    for name, p in model.named_parameters():
        group = group_of(name)
        reference = initial if group in ("components", "embeddings", "head") else trained
        assert torch.equal(p.detach(), reference[name]), name


def test_a_same_budget_baseline_is_fine_tuned_exactly_as_long_as_the_hybrid_since_its_last_rewind(tmp_path):
    """train.baselines keeps the plan's rewinds: the component alone ends with exactly the fine-tuning the
    hybrid's components had after their last rewind (here: the retrain stage, nothing of the search), the
    same as a one-component spec that only has that stage."""
    from safetensors.torch import load_file

    stages = (f"- {{name: search, search: 'darts(lr=0.1, alternate=true)', data: '{DATA}', steps: 4}}\n"
              "- {name: rewind}\n- {name: retrain, steps: 3}\n")
    result, _ = run(tmp_path, spec_text(stages, train_extra="  baselines: true\n"))
    base = result.run_dir / "baselines" / "ssm"
    plan = json.loads((base / "plan.json").read_text())
    # (the alternating search of 4 steps updates the weights twice: the component alone takes those 2 steps)
    assert [(s["kind"], s["steps"]) for s in plan["stages"]] == [("finetune", 2), ("rewind", 0), ("finetune", 3)]
    events = [json.loads(line) for line in (base / "metrics.jsonl").read_text().splitlines()]
    assert [e["stage"] for e in events if e["event"] == "rewind"] == ["rewind"]
    alone_text = spec_text(f"- {{name: retrain, kind: finetune, data: '{DATA}', steps: 3}}\n")
    attn = next(line for line in alone_text.splitlines(keepends=True) if "family: gpt-neox" in line)
    alone_text = alone_text.replace("  attn:\n" + attn + "    blocks: split(2)\n", "").replace("split(2)", "split(1)")
    assert "attn" not in alone_text
    alone, _ = run(tmp_path, alone_text, name="alone")
    got = load_file(str(base / "final" / "model.safetensors"))
    want = load_file(str(alone.run_dir / "final" / "model.safetensors"))
    projectors = {k for k in want if re.match(r"blocks\.\d+\.projector_(in|out)\.", k)}  # gated away: alpha is 1
    assert projectors and set(got) == set(want)
    assert all(torch.equal(got[k], want[k]) for k in set(want) - projectors)
    assert result.comparison[2]["loss"] == alone.test["loss"]


EPOCH_DATA = "recall(vocab=16, length=16, examples=40, valid=0.1, test=0.1)"  # 32 training sequences


def test_a_stage_in_epochs_takes_the_steps_of_its_epochs(tmp_path):
    from hybridc.data import batch_indices, split_sizes
    from hybridc.train.finish import baseline_spec

    assert split_sizes(40, 0.1, 0.1)[0] == 32
    stages = (f"- {{name: finetune, data: '{EPOCH_DATA}', epochs: 2, batch_size: 8, grad_accum: 2}}\n"
              "- {name: retrain, kind: finetune, epochs: 0.5, batch_size: 6}\n")
    result, messages = run(tmp_path, spec_text(stages, mixture="fixed([[0.5, 0.5], [0.5, 0.5]])"))
    events = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    starts = {e["stage"]: e for e in events if e["event"] == "stage"}
    # 2 x 32 sequences in global batches of 16; then 16 sequences in batches of 6 (the last one partly)
    assert (starts["finetune"]["steps"], starts["finetune"]["epochs"]) == (4, 2.0)
    assert (starts["retrain"]["steps"], starts["retrain"]["epochs"]) == (3, 0.5)
    train = [e for e in events if e["event"] == "train"]
    assert [(e["stage"], e["step"]) for e in train] == [("finetune", s) for s in (1, 2, 3, 4)] + [
        ("retrain", s) for s in (1, 2, 3)]
    assert "stage 'finetune': 4 steps" in " ".join(messages)
    plan = json.loads((result.run_dir / "plan.json").read_text())
    assert [(s["steps"], s["epochs"]) for s in plan["stages"]] == [(None, 2.0), (None, 0.5)]
    # the 4 steps' batches see every training sequence exactly twice
    seen = torch.cat([batch_indices(32, 8, step * 2 + micro, seed=3, stream="finetune/train")
                      for step in range(4) for micro in range(2)])
    assert torch.equal(torch.bincount(seen, minlength=32), torch.full((32,), 2))
    # --max-steps caps a stage in epochs; the same-budget baselines keep the epochs
    capped, _ = run(tmp_path, spec_text(stages, mixture="fixed([[0.5, 0.5], [0.5, 0.5]])"), name="capped", max_steps=2)
    events = [json.loads(line) for line in (capped.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [e["steps"] for e in events if e["event"] == "stage"] == [2, 2]
    assert len([e for e in events if e["event"] == "train"]) == 4
    alone = baseline_spec(load_spec(tmp_path / "run.yaml"), "ssm").spec.train.stages
    assert [(s.kind, s.steps, s.epochs) for s in alone] == [("finetune", None, 2.0), ("finetune", None, 0.5)]


def test_a_resumed_stage_in_epochs_keeps_its_step_count(tmp_path, monkeypatch):
    """An epochs stage's step count depends on the global batch (the number of processes): a resume under
    another count keeps the recorded one, so the stage and its learning-rate schedule end where planned."""
    from hybridc.errors import Interrupted
    from hybridc.spec.model import Stage
    from hybridc.train.run import Run

    text = spec_text(f"- {{name: finetune, data: '{EPOCH_DATA}', epochs: 2, batch_size: 8, grad_accum: 2}}\n",
                     mixture="fixed([[0.5, 0.5], [0.5, 0.5]])")
    calls = iter([False, True])  # a signal arrives after the second step
    with monkeypatch.context() as patch:
        patch.setattr(Run, "stop_requested", lambda self: next(calls))
        with pytest.raises(Interrupted):
            run(tmp_path, text)
    with monkeypatch.context() as patch:  # as if resumed on two processes: half the steps per epoch
        original = Stage.steps_for
        patch.setattr(Stage, "steps_for", lambda self, sequences, processes: original(self, sequences, 2 * processes))
        run(tmp_path, text, resume=True)
    events = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [e["step"] for e in events if e["event"] == "train"] == [1, 2, 3, 4]
    lrs = [e["lr"] for e in events if e["event"] == "train"]
    assert lrs[0] > lrs[1] > lrs[2] > lrs[3]  # one schedule over the 4 planned steps

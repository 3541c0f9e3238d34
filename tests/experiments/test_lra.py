"""`hybridc lra` end to end on a small case: the generated tasks run, a task whose data is not on disk is skipped
and named, a task read from --data-dir runs; the table, lra-results.json (test accuracies at the best validation
learning rate, the searched alphas) and the plot."""

from __future__ import annotations

import json
import textwrap
from dataclasses import replace

import pytest
from click.testing import CliRunner

from hybridc.cli import main
from hybridc.experiments import lra
from tests.specs import write_spec

SPEC = textwrap.dedent("""\
    hybridc: 1
    name: proxy
    components:
      attn: {init: {family: gpt-neo, hidden_size: 16, layers: 2, heads: 2, vocab_size: 18, max_length: 64}, blocks: split(2)}
      ssm: {init: {family: mamba, hidden_size: 16, layers: 2, vocab_size: 18}, blocks: split(2)}
    hybrid: {mixture: search}
    task: classify(10)
    train:
      stages:
        - {name: search, search: "darts(lr=0.05)", data: "listops(length=32, depth=3, examples=64)", steps: 4, batch_size: 8}
    """)


@pytest.fixture
def small_plans(monkeypatch):
    """The cpu preset's plans with little data (the preset's own sizes are the benchmark's)."""
    cpu = dict(lra.PLANS["cpu"])
    cpu["listops"] = replace(cpu["listops"], data="listops(length=32, depth=3, examples=64)", length=32)
    cpu["pathfinder"] = replace(cpu["pathfinder"], data="pathfinder(examples=24, valid=0.25, test=0.25)")
    cpu["retrieval"] = replace(cpu["retrieval"], data="retrieval({data}, length=12)", length=12)
    monkeypatch.setitem(lra.PLANS, "cpu", cpu)


def test_lra_runs_the_generated_tasks_and_skips_what_is_missing(tmp_path, small_plans):
    spec = write_spec(tmp_path, SPEC)
    out = tmp_path / "lra"
    result = CliRunner().invoke(main, ["lra", str(spec), "--tasks", "listops,text", "--steps", "2", "--batch-size", "4",
                                       "--lrs", "1e-3,3e-3", "--data-dir", str(tmp_path / "data"), "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    assert "Long Range Arena test accuracy" in result.output
    assert f"skipped text: no data under {tmp_path / 'data'} (looked for aclImdb, imdb)" in result.output
    results = json.loads((out / "lra-results.json").read_text())
    assert set(results["tasks"]) == {"listops"} and set(results["skipped"]) == {"text"}
    assert (out / "lra-results.png").stat().st_size > 1000
    row = results["tasks"]["listops"]
    assert set(row["test"]) == {"hybrid", "attn", "ssm"}
    for model, lr in row["lr"].items():  # the learning rate kept is the one with the best validation accuracy
        valid = {r: json.loads(line)["accuracy"] for r in ("0.001", "0.003")
                 for line in (out / "listops" / f"lr{r}" / ("" if model == "hybrid" else f"baselines/{model}")
                              / "metrics.jsonl").read_text().splitlines()
                 if '"event": "eval"' in line}
        assert valid[f"{lr:g}"] == max(valid.values()) == row["valid"][model]
    assert len(row["alphas"]) == 2 and all(abs(sum(r) - 1) < 1e-5 for r in row["alphas"])
    lock = (out / "listops" / "lr0.001" / "spec.lock.yaml").read_text()
    assert "family: gpt-neo" in lock and "blocks: split(2)" in lock and "task: classify(10)" in lock
    assert "hidden_size: 32" in lock  # the cpu preset's proxies


@pytest.mark.slow
def test_lra_pathfinder_and_retrieval_from_the_data_dir(tmp_path, small_plans):
    """Pathfinder's 1024 pixels per image make this the slow one (CI runs it in its long part)."""
    spec = write_spec(tmp_path, SPEC)
    data = tmp_path / "data" / "aan"
    data.mkdir(parents=True)
    for split, n in (("train", 12), ("eval", 4), ("test", 4)):
        (data / f"new_aan_pairs.{split}.tsv").write_text(
            "".join(f"{k % 2}.0\ta{k}\tb{k}\tpaper {k}\tpaper {k + k % 2}\n" for k in range(n)))
    out = tmp_path / "lra"
    result = CliRunner().invoke(main, ["lra", str(spec), "--tasks", "pathfinder,retrieval", "--steps", "2",
                                       "--batch-size", "4", "--lrs", "1e-3", "--data-dir", str(tmp_path / "data"),
                                       "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    results = json.loads((out / "lra-results.json").read_text())
    assert set(results["tasks"]) == {"pathfinder", "retrieval"} and not results["skipped"]
    for row in results["tasks"].values():
        assert set(row["test"]) == {"hybrid", "attn", "ssm"} and all(0 <= a <= 1 for a in row["test"].values())
    lock = (out / "pathfinder" / "lr0.001" / "spec.lock.yaml").read_text()
    assert "task: classify(2)" in lock and "vocab_size: 256" in lock and "max_length: 1024" in lock
    lock = (out / "retrieval" / "lr0.001" / "spec.lock.yaml").read_text()
    assert "task: match(2)" in lock and "vocab_size: 257" in lock


def _earlier_run(tmp_path, rs, preset="cpu"):
    """lra-results.json and the run dirs' spec.yaml as run_lra leaves them for a finished listops task."""
    from hybridc.experiments.common import canonical
    from hybridc.spec.emit import dump_yaml

    earlier = tmp_path / "earlier"
    plan = lra.plan_for("listops", preset)
    for lr in plan.lrs:
        run = earlier / "listops" / f"lr{lr:g}"
        run.mkdir(parents=True)
        (run / "spec.yaml").write_text(dump_yaml(canonical(lra.proxy_spec(rs, "listops", preset, plan, plan.data, lr))))
    row = {"data": plan.data, "test": {"hybrid": 0.5, "attn": 0.4, "ssm": 0.3}, "valid": {}, "lr": {},
           "budget": {"steps": plan.steps, "epochs": plan.epochs, "batch_size": plan.batch_size, "lrs": list(plan.lrs)}}
    results = {"spec": rs.spec.name, "preset": preset, "blocks": rs.num_blocks, "components": list(rs.names),
               "data_seed": rs.spec.train.data_seed_or_seed, "seed": rs.spec.train.seed, "tasks": {"listops": row},
               "skipped": {}}
    return earlier, results


def test_a_finished_task_is_reused_only_when_this_run_would_redo_it_as_it_was(tmp_path):
    """benchmarks/lra.py --reuse: a task is taken over from earlier results only when its header, data, budget and
    every learning rate's spec are what this run would train; otherwise it runs again, and the reason is given."""
    from hybridc.spec import load_spec

    rs = load_spec(write_spec(tmp_path, SPEC))
    earlier, results = _earlier_run(tmp_path, rs)
    rows, why = lra.reusable(results, earlier, rs, tasks=("listops", "pathfinder"))
    assert set(rows) == {"listops"} and rows["listops"]["reused"] == str(earlier)
    assert why == {"pathfinder": "not in the results"}

    assert not lra.reusable({**results, "seed": 7}, earlier, rs, tasks=("listops",))[0]  # another seed's
    assert "steps" in lra.reusable(results, earlier, rs, tasks=("listops",), steps=5)[1]["listops"]  # another budget
    other_preset = lra.reusable(results, earlier, rs, tasks=("listops",), preset="lra")[1]["listops"]
    assert "preset 'cpu', not 'lra'" in other_preset
    spec_yaml = earlier / "listops" / "lr0.003" / "spec.yaml"
    spec_yaml.write_text(spec_yaml.read_text().replace("hidden_size: 32", "hidden_size: 64", 1))  # other code's model
    assert lra.reusable(results, earlier, rs, tasks=("listops",))[1] == {
        "listops": f"{spec_yaml} is not the spec this run would train"}
    spec_yaml.unlink()
    assert lra.reusable(results, earlier, rs, tasks=("listops",))[1] == {"listops": f"{spec_yaml} is missing"}


def test_run_lra_keeps_the_tasks_done_and_runs_nothing_for_them(tmp_path):
    from hybridc.spec import load_spec

    rs = load_spec(write_spec(tmp_path, SPEC))
    earlier, results = _earlier_run(tmp_path, rs)
    rows, _ = lra.reusable(results, earlier, rs, tasks=("listops",))
    said = []
    out = lra.run_lra(rs, tmp_path / "out", tasks=("listops",), done=rows, say=said.append)
    assert out["tasks"] == rows and said == [f"lra: listops: reused from {earlier}"]
    assert json.loads((tmp_path / "out" / "lra-results.json").read_text())["tasks"] == rows
    assert not (tmp_path / "out" / "listops").exists()  # nothing trained
    # taken over twice: still checked in the directory that ran it
    again, why = lra.reusable(out, tmp_path / "out", rs, tasks=("listops",))
    assert again == rows and not why

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

"""`hybridc mad`, `sweep` and `program` end to end on a small case."""

from __future__ import annotations

import csv
import json
import textwrap

import pytest
from click.testing import CliRunner

from hybridc.cli import main
from hybridc.experiments.program import program_alphas
from hybridc.spec import load_spec
from hybridc.spec.frontend import parse_file
from tests.specs import write_spec

SPEC = textwrap.dedent("""\
    hybridc: 1
    name: proxy
    # two small components from scratch
    components:
      attn: {init: {family: gpt-neox, hidden_size: 16, layers: 2, heads: 2, vocab_size: 16, max_length: 64}, blocks: split(BLOCKS)}
      ssm: {init: {family: mamba, hidden_size: 16, layers: 2, vocab_size: 16}, blocks: split(BLOCKS)}
    hybrid: {mixture: search}
    train:
      stages:
        - {name: search, data: "recall(vocab=16, length=16, examples=128)", steps: 4, batch_size: 8}
    """)


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def test_mad_then_program(tmp_path):
    spec = write_spec(tmp_path, SPEC.replace("BLOCKS", "2"))
    out = tmp_path / "mad"
    result = run("mad", spec, "--tasks", "selective-copying", "--steps", "3", "--batch-size", "8",
                 "--lrs", "1e-3,3e-3", "-o", out)
    assert "MAD test accuracy" in result.output and "selective-copying" in result.output
    lines = result.output.splitlines()
    assert lines[0] == f"mad: 1 task x 2 learning rates (hybrid, attn alone, ssm alone) into {out}"  # (at once)
    starts = [line for line in lines if line.startswith("stage ") and line.endswith(": 3 steps")]
    assert starts == ["stage 1/1 search (hybrid): 3 steps", "stage 1/1 search (attn alone): 3 steps",
                      "stage 1/1 search (ssm alone): 3 steps"] * 2  # each model named, for each learning rate
    results = json.loads((out / "mad-results.json").read_text())
    assert (out / "mad-results.png").stat().st_size > 1000
    assert results["components"] == ["attn", "ssm"] and results["blocks"] == 2
    for task in ("selective-copying",):
        row = results["tasks"][task]
        assert set(row["test"]) == {"hybrid", "attn", "ssm"} and row["lr"]["hybrid"] in (1e-3, 3e-3)
        assert len(row["alphas"]) == 2 and all(abs(sum(r) - 1) < 1e-5 for r in row["alphas"])
        for lr in ("0.001", "0.003"):
            assert (out / task / f"lr{lr}" / "baselines" / "ssm" / "final").is_dir()
    # the proxies keep the spec's families and blocks, with the task's vocabulary
    lock = (out / "selective-copying" / "lr0.001" / "spec.lock.yaml").read_text()
    assert "family: mamba" in lock and "blocks: split(2)" in lock

    result = run("program", spec, "--from", out / "mad-results.json", "-o", tmp_path / "programmed.yaml")
    programmed = parse_file(tmp_path / "programmed.yaml")
    assert programmed.spec.hybrid.mixture.mode == "programmed"
    assert "# two small components from scratch" in (tmp_path / "programmed.yaml").read_text()
    rs = load_spec(tmp_path / "programmed.yaml")
    expected = results["tasks"]["selective-copying"]["alphas"]
    assert all(abs(a - e) < 1e-6 for row, erow in zip(rs.alphas, expected) for a, e in zip(row, erow))
    diff = CliRunner().invoke(main, ["diff", str(spec), str(tmp_path / "programmed.yaml")])
    changed = [line for line in diff.output.splitlines() if line[:1] in "~+-" and not line.startswith(("---", "+++"))]
    assert changed == [
        "~ hybrid.mixture: search -> programmed(programmed.alphas.json)",
        "~ train.stages[search].kind: search -> finetune",
        "~ train.stages[search].train: [components, projectors, embeddings, head, alphas] -> [components, projectors, "
        "embeddings, head]",
        "- train.stages[search].search: removed (was dash(lr=0.05, alternate=false, tau=1.0))",
    ]


def test_program_gives_zero_weight_to_a_component_that_cannot_take_the_length(tmp_path):
    spec = write_spec(tmp_path, SPEC.replace("BLOCKS", "1").replace("max_length: 64", "max_length: 16")
                      .replace("length=16", "length=16"))
    rs = load_spec(spec)
    results = {"components": ["attn", "ssm"], "tasks": {"a": {"alphas": [[0.7, 0.3]]}, "b": {"alphas": [[0.5, 0.5]]}}}
    assert program_alphas(results, rs) == [[0.6, 0.4]]
    long = write_spec(tmp_path, SPEC.replace("BLOCKS", "1").replace("max_length: 64", "max_length: 20")
                      .replace("length=16, examples=128", "length=32, examples=128"), "long.yaml")
    with pytest.raises(Exception):  # the data is longer than attn allows: the spec itself is invalid
        load_spec(long)


def test_sweep_line(tmp_path):
    spec = write_spec(tmp_path, SPEC.replace("BLOCKS", "1"))
    run("train", spec, "-o", tmp_path / "searched", "-q")
    out = tmp_path / "sweep"
    result = run("sweep", spec, "--alphas", "0:1:3", "--search", tmp_path / "searched", "-o", out, "-q")
    assert "best valid loss" in result.output
    rows = list(csv.DictReader(open(out / "sweep.csv")))
    assert [float(r["alpha_block0"]) for r in rows] == [0.0, 0.5, 1.0]
    assert all(float(r["valid_loss"]) > 0 for r in rows)
    assert (out / "sweep.png").stat().st_size > 1000
    lock = (out / "point-0.5" / "spec.lock.yaml").read_text()
    assert "fixed([[0.5, 0.5]])" in lock and "kind: finetune" in lock


def test_a_sweep_point_keeps_the_plans_rewinds_and_drops_its_discretization(tmp_path):
    """A point differs from the searched hybrid only in its alphas: its weights, too, are reloaded at each
    rewind, so both end with the same fine-tuning; a fixed mixture has nothing to discretize."""
    from hybridc.experiments.sweep import point_spec

    stages = """\
        - {name: align, data: "recall(vocab=16, length=16, examples=128)", steps: 2}
        - {name: search, search: "darts(lr=0.1, alternate=true)", steps: 4}
        - {name: rewind}
        - {name: discretize}
        - {name: retrain, steps: 3}
    """
    text = SPEC.replace("BLOCKS", "1").split("  stages:\n")[0] + "  stages:\n" + textwrap.indent(textwrap.dedent(stages), "    ")
    point = point_spec(load_spec(write_spec(tmp_path, text)), (0.3,))
    assert [(s.name, s.kind, s.steps) for s in point.spec.train.stages] == [
        ("align", "align", 2), ("search", "finetune", 2), ("rewind", "rewind", 0), ("retrain", "retrain", 3)]
    assert all(s.search is None and "alphas" not in s.train for s in point.spec.train.stages)
    assert str(point.spec.hybrid.mixture) == "fixed([[0.7, 0.3]])"


def weight_steps_per_stage(run_dir) -> dict[str, int]:
    """Optimizer steps that updated weights (not alpha-only steps), per stage, as metrics.jsonl records them."""
    counts: dict[str, int] = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event.get("event") == "train" and event["kind"] != "alphas":
            counts[event["stage"]] = counts.get(event["stage"], 0) + 1
    return counts


@pytest.mark.parametrize("search, steps", [("darts(lr=0.1, alternate=true)", 5), ("darts(lr=0.1, alternate=true, heldout=0)", 4),
                                           ("dash(lr=0.1)", 3)])
def test_a_sweep_point_and_a_component_alone_take_the_searched_hybrids_weight_steps(tmp_path, search, steps):
    """Stage by stage, a sweep point and each baseline update their weights exactly as often as the searched
    hybrid does (an alternating search spends every other step on the alphas)."""
    from hybridc.experiments.sweep import point_spec
    from hybridc.train.run import TrainOptions, train
    from hybridc.train.finish import baseline_spec

    stages = f"""\
        - {{name: align, data: "recall(vocab=16, length=16, examples=128)", steps: 2}}
        - {{name: search, search: "{search}", steps: {steps}}}
        - {{name: rewind}}
        - {{name: retrain, steps: 3}}
    """
    text = SPEC.replace("BLOCKS", "1").split("  stages:\n")[0] + "  stages:\n" + textwrap.indent(textwrap.dedent(stages), "    ")
    rs = load_spec(write_spec(tmp_path, text))
    runs = {"hybrid": rs, "point": point_spec(rs, (0.3,)), "ssm alone": baseline_spec(rs, "ssm")}
    counts = {}
    for name, spec in runs.items():
        train(spec, TrainOptions(out_dir=tmp_path / name, quiet=True), say=lambda _: None)
        counts[name] = weight_steps_per_stage(tmp_path / name)
    alternating = "alternate=true" in search
    assert counts["hybrid"] == {"align": 2, "search": (steps + 1) // 2 if alternating else steps, "retrain": 3}
    assert counts["point"] == counts["hybrid"] and counts["ssm alone"] == counts["hybrid"]

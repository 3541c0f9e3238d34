"""The training plan (plan.json and the `hybridc compile` table) of stages given in steps or epochs."""

from __future__ import annotations

import json

from click.testing import CliRunner

import hybridc
from hybridc.cli import main
from hybridc.cli.summary import summary_tables
from hybridc.graph.plan import plan_summary
from tests.specs import SMALL, write_spec

STAGES = SMALL.replace('- {name: align, data: "recall(vocab=16, length=16)", steps: 5}',
                       '- {name: align, data: "recall(vocab=16, length=16)", epochs: 2}\n'
                       '    - {name: finetune, epochs: 0.5, warmup: 3}\n'
                       '    - {name: retrain, kind: finetune, steps: 7}')


def test_the_plan_shows_epochs_and_leaves_their_steps_to_the_run(tmp_path):
    compiled = hybridc.compile(write_spec(tmp_path, STAGES))
    stages = compiled.plan.stages
    assert [(s.steps, s.epochs) for s in stages] == [(None, 2.0), (None, 0.5), (7, None)]
    assert [s.schedule.steps for s in stages] == [None, None, 7] and stages[1].schedule.warmup == 3
    assert [row["steps"] for row in plan_summary(compiled.plan)] == ["2 epochs", "0.5 epochs", 7]
    plan = json.loads(compiled.plan.to_json())
    assert [(s["steps"], s["epochs"]) for s in plan["stages"]] == [(None, 2.0), (None, 0.5), (7, None)]
    table = summary_tables(compiled)[-1]
    steps = next(c for c in table.columns if c.header == "steps")
    assert list(steps.cells) == ["2 epochs", "0.5 epochs", "7"]


def test_compile_prints_the_epochs(tmp_path):
    result = CliRunner().invoke(main, ["compile", str(write_spec(tmp_path, STAGES)), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "2 epochs" in result.output and "0.5 epochs" in result.output
    plan = json.loads((tmp_path / "out" / "plan.json").read_text())
    assert plan["stages"][0]["steps"] is None and plan["stages"][0]["epochs"] == 2.0

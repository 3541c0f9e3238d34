"""The stages a sweep point and a component alone take: the searched hybrid's, with nothing left to search."""

from __future__ import annotations

from hybridc.spec import load_spec
from hybridc.spec.derive import fixed_mixture_stages
from hybridc.spec.emit import spec_to_data
from tests.specs import SMALL, write_spec

STAGES = """\
    - {name: align, data: "recall(vocab=16, length=16)", steps: 6}
    - {name: search, search: "darts(lr=0.05, alternate=true)", steps: 7, lr: 0.002}
    - {name: rewind}
    - {name: joint, kind: search, search: "dash(lr=0.1)", epochs: 1.5}
    - {name: discretize}
    - {name: retrain, steps: 4}
"""


def derived(tmp_path, **options):
    text = SMALL.replace("mixture: fixed([[0.5, 0.5], [0.25, 0.75]])", "mixture: search").replace(
        '    - {name: align, data: "recall(vocab=16, length=16)", steps: 5}\n', STAGES)
    rs = load_spec(write_spec(tmp_path, text))
    return fixed_mixture_stages(spec_to_data(rs.spec)["train"]["stages"], rs.spec.train.stages, **options)


def summary(stages):
    return [(s["name"], s["kind"], s.get("steps"), s.get("epochs"), s.get("train"), "search" in s) for s in stages]


def test_a_sweep_point_keeps_each_stage_kind_and_drops_the_alphas(tmp_path):
    stages = derived(tmp_path)
    assert summary(stages) == [
        ("align", "align", 6, None, ["projectors", "embeddings"], False),
        # an alternating search of 7 steps takes 4 weight steps; a joint one takes every step
        ("search", "finetune", 4, None, ["components", "projectors", "embeddings", "head"], False),
        ("rewind", "rewind", None, None, None, False),
        ("joint", "finetune", None, 1.5, ["components", "projectors", "embeddings", "head"], False),
        ("retrain", "retrain", 4, None, ["components", "projectors", "embeddings", "head"], False),
    ]
    assert stages[1]["lr"] == 0.002  # everything but the search itself is kept


def test_a_component_alone_fine_tunes_its_groups_in_every_stage(tmp_path):
    groups = ("components", "embeddings", "head")
    stages = derived(tmp_path, kind="finetune", train=groups)
    assert [(s["name"], s["kind"], s.get("steps"), s.get("train")) for s in stages] == [
        ("align", "finetune", 6, list(groups)), ("search", "finetune", 4, list(groups)),
        ("rewind", "rewind", None, None), ("joint", "finetune", None, list(groups)),
        ("retrain", "finetune", 4, list(groups))]

"""Semantic diff: formatting never shows, every change is named once, and diffs invert."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings

from hybridc.cli import main
from hybridc.graph.diff import diff_specs, try_resolve
from hybridc.spec.frontend import parse_file
from hybridc.testing.invariants import variation_shows_in_diff
from hybridc.testing.strategies import specs, variations
from tests.specs import SMALL, write_spec

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def parsed(tmp_path, data_or_text, name):
    text = data_or_text if isinstance(data_or_text, str) else yaml.safe_dump(data_or_text, sort_keys=False)
    return parse_file(write_spec(tmp_path, text, name))


def changes(pa, pb):
    return diff_specs(pa.spec, pb.spec, try_resolve(pa), try_resolve(pb))


def rendered(cs):
    return sorted(c.render() for c in cs)


@settings(max_examples=60, **SETTINGS)
@given(data=specs())
def test_a_spec_against_itself_and_its_canonical_form(tmp_path_factory, data):
    tmp = tmp_path_factory.mktemp("d")
    a = parsed(tmp, data, "a.yaml")
    assert changes(a, a) == []
    canonical = parsed(tmp, a.canonical_text(), "canonical.yaml")
    assert changes(a, canonical) == []
    assert changes(canonical, a) == []


@settings(max_examples=60, **SETTINGS)
@given(a=specs(), b=specs())
def test_diffs_invert(tmp_path_factory, a, b):
    tmp = tmp_path_factory.mktemp("d")
    pa, pb = parsed(tmp, a, "a.yaml"), parsed(tmp, b, "b.yaml")
    forward, backward = changes(pa, pb), changes(pb, pa)
    assert rendered(c.inverse() for c in forward) == rendered(backward)
    if pa.spec == pb.spec:
        assert forward == []


@settings(max_examples=80, **SETTINGS)
@given(case=specs(budgets=True).flatmap(lambda d: variations(d, probe=False).map(lambda v: (d, v))))
def test_a_single_change_is_named_exactly(case):
    """Every kind of change ``hybridc.testing.strategies.variations`` makes (projector, width, embeddings, head,
    mixture, alpha rows, block cuts and counts, order, task, seeds, stage settings, init settings, budget, ...)
    is named by exactly its paths, and the reverse diff is its inverse."""
    data, variation = case
    variation_shows_in_diff(data, variation)


@pytest.mark.parametrize("edit, path", [
    (lambda t: t.replace("  mixture: fixed", "  budget: {params: 0.9x}\n  mixture: fixed"), "hybrid.budget"),
    (lambda t: t.replace("train:\n", "train:\n  data_seed: 3\n"), "train.data_seed"),
])
def test_the_budget_and_the_data_seed_are_named(tmp_path, edit, path):
    """(They were not: a budget or data seed added or changed made no difference to ``diff``.)"""
    a = parsed(tmp_path, SMALL, "a.yaml")
    b = parsed(tmp_path, edit(SMALL), "b.yaml")
    assert [c.path for c in changes(a, b)] == [path]


def test_a_distill_stage_s_loss_is_named(tmp_path):
    text = SMALL.replace('{name: align, data: "recall(vocab=16, length=16)", steps: 5}',
                         '{name: align, data: "recall(vocab=16, length=16)", steps: 5}\n'
                         '    - {name: discretize}\n    - {name: distill, steps: 3}')
    a = parsed(tmp_path, text, "a.yaml")
    b = parsed(tmp_path, text.replace("{name: distill, steps: 3}", "{name: distill, steps: 3, distill: 'kl(temperature=4.0)'}"),
               "b.yaml")
    assert [c.render() for c in changes(a, b)] == [
        "train.stages[distill].distill: kl(temperature=2.0, ce=0.0) -> kl(temperature=4.0, ce=0.0)"]


def test_split_and_the_ranges_it_means_are_the_same(tmp_path):
    a = parsed(tmp_path, SMALL, "a.yaml")
    b = parsed(tmp_path, SMALL.replace("blocks: split(2)", "blocks: [0..2, 2..4]"), "b.yaml")
    assert changes(a, b) == []
    moved = parsed(tmp_path, SMALL.replace("blocks: split(2)", "blocks: 0..3, 3..4"), "c.yaml")
    (change,) = changes(a, moved)
    assert change.render() == "components.attn.blocks: 0..2, 2..4 -> 0..3, 3..4  (layers moved: 2..3 from block 1 to block 0)"
    assert change.inverse().note == "layers moved: 2..3 from block 0 to block 1"


def test_alpha_changes_carry_the_numeric_change(tmp_path):
    a = parsed(tmp_path, SMALL, "a.yaml")
    b = parsed(tmp_path, SMALL.replace("[0.25, 0.75]]", "[0.5, 0.5]]"), "b.yaml")
    (change,) = changes(a, b)
    assert change.path == "hybrid.mixture[1]" and change.note == "attn +0.25, ssm -0.25"


def test_a_weight_belongs_to_its_component_not_to_its_column(tmp_path):
    a = parsed(tmp_path, SMALL, "a.yaml")
    attn = SMALL[SMALL.index("  attn:"):SMALL.index("  ssm:")]
    ssm = SMALL[SMALL.index("  ssm:"):SMALL.index("hybrid:")]
    swapped = SMALL.replace(attn + ssm, ssm + attn)
    b = parsed(tmp_path, swapped.replace("[0.25, 0.75]]", "[0.75, 0.25]]"), "b.yaml")
    assert rendered(changes(a, b)) == ["components (mixing order): [attn, ssm] -> [ssm, attn]",
                                       "tokenizer: attn -> ssm"]  # the first component's, by default
    c = parsed(tmp_path, swapped.replace("[0.25, 0.75]]", "[0.5, 0.5]]"), "c.yaml")
    (row,) = [change for change in changes(a, c) if change.path.startswith("hybrid.mixture")]
    assert row.path == "hybrid.mixture[1]" and row.note == "attn +0.25, ssm -0.25"


def test_cli_exit_codes_json_and_graph(tmp_path):
    a = write_spec(tmp_path, SMALL, "a.yaml")
    same = write_spec(tmp_path, "# reordered\n" + SMALL.replace("name: small\n", "") + "name: small\n", "same.yaml")
    b = write_spec(tmp_path, SMALL.replace("{attn: linear, ssm: mlp}", "linear"), "b.yaml")
    result = CliRunner().invoke(main, ["diff", str(a), str(same)])
    assert result.exit_code == 0 and "no semantic change" in result.output
    result = CliRunner().invoke(main, ["diff", str(a), str(b), "--graph"])
    assert result.exit_code == 1
    assert "~ hybrid.projector.ssm: mlp -> linear" in result.output and "params.projectors:" in result.output
    data = json.loads(CliRunner().invoke(main, ["diff", str(a), str(b), "--format", "json", "--graph"]).output)
    assert data["same"] is False and data["changes"][0]["path"] == "hybrid.projector.ssm"
    groups = {g["group"]: g for g in data["graph"]}
    assert groups["params.projectors"]["after"] < groups["params.projectors"]["before"]
    bad = write_spec(tmp_path, SMALL.replace("blocks: split(2)", "blocks: split(2"), "bad.yaml")
    result = CliRunner().invoke(main, ["diff", str(a), str(bad)])
    assert result.exit_code == 2 and "bad.yaml:6:" in result.output


def test_diff_does_not_import_torch(tmp_path):
    a = write_spec(tmp_path, SMALL, "a.yaml")
    b = write_spec(tmp_path, SMALL.replace("seed", "seed"), "b.yaml")
    code = textwrap.dedent(f"""
        import sys
        from click.testing import CliRunner
        from hybridc.cli import main
        for extra in ([], ["--graph"]):
            result = CliRunner().invoke(main, ["diff", {str(a)!r}, {str(b)!r}, *extra])
            assert result.exit_code == 0, result.output
        assert "torch" not in sys.modules and "transformers" not in sys.modules
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr

"""Semantic diff: formatting never shows, every change is named once, and diffs invert."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import textwrap

import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hybridc.cli import main
from hybridc.spec.diff import diff_specs, try_resolve
from hybridc.spec.frontend import parse_file
from tests.specs import SMALL, write_spec
from tests.strategies import PROJECTORS, specs

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


def _edits(data: dict) -> list[tuple[str, callable]]:
    """Single edits that keep a spec valid, each with the path the diff must name."""
    names = list(data["components"])
    c0 = names[0]
    hybrid = data["hybrid"]
    edits = [
        ("name", lambda d: d.update(name="renamed")),
        ("task", lambda d: d.update(task="tag(7)")),
        (f"components.{c0}.init.initializer_range", lambda d: d["components"][c0]["init"].update(initializer_range=0.05)),
        (f"components.{c0}.trust_remote_code", lambda d: d["components"][c0].update(trust_remote_code=True)),
    ]
    current = hybrid["projector"] if isinstance(hybrid["projector"], str) else hybrid["projector"][c0]
    other = next(k for k in PROJECTORS if k != current)

    def set_projector(d):
        kinds = d["hybrid"]["projector"]
        kinds = {n: kinds for n in names} if isinstance(kinds, str) else dict(kinds)
        kinds[c0] = other
        d["hybrid"]["projector"] = kinds

    edits.append((f"hybrid.projector.{c0}", set_projector))
    if len(names) > 1:
        value = names[1] if hybrid["embeddings"] != names[1] else "mix"
        edits.append(("hybrid.embeddings", lambda d: d["hybrid"].update(embeddings=value)))
    if hybrid["mixture"].startswith("fixed("):
        rows = eval(hybrid["mixture"][len("fixed("):-1])
        if len(names) > 1:
            new = copy.deepcopy(rows)
            new[0] = [1.0] + [0.0] * (len(names) - 1) if new[0][0] != 1.0 else [0.0, 1.0] + [0.0] * (len(names) - 2)
            edits.append(("hybrid.mixture[0]", lambda d: d["hybrid"].update(mixture=f"fixed({new})")))
    for name, comp in data["components"].items():
        layers = comp["init"]["layers"]
        blocks = comp["blocks"]
        n = int(blocks[6:-1]) if blocks.startswith("split(") else blocks.count("..")
        if n == 2 and layers >= 3:
            from hybridc.spec.model import split_ranges

            # the current boundary: split(2)'s, or the one written ("0..a, a..L")
            cut = split_ranges(layers, 2)[0].stop if blocks.startswith("split(") else int(blocks.split(",")[0].split("..")[1])
            new_cut = cut + 1 if cut + 1 < layers else cut - 1
            edits.append((f"components.{name}.blocks",
                          lambda d, name=name, c=new_cut, L=layers: d["components"][name].update(blocks=f"0..{c}, {c}..{L}")))
            break
    if "train" in data:
        first = data["train"]["stages"][0]["name"]
        if "steps" in data["train"]["stages"][0]:
            edits.append((f"train.stages[{first}].steps",
                          lambda d: d["train"]["stages"][0].update(steps=d["train"]["stages"][0]["steps"] + 1)))
        else:
            edits.append((f"train.stages[{first}].epochs",
                          lambda d: d["train"]["stages"][0].update(epochs=d["train"]["stages"][0]["epochs"] * 2)))
        edits.append(("train.seed", lambda d: d["train"].update(seed=d["train"]["seed"] + 1)))
    return edits


@settings(max_examples=80, **SETTINGS)
@given(data=specs(), pick=st.integers(0, 1000))
def test_a_single_edit_is_named_exactly(tmp_path_factory, data, pick):
    tmp = tmp_path_factory.mktemp("d")
    edits = _edits(data)
    path, edit = edits[pick % len(edits)]
    edited = copy.deepcopy(data)
    edit(edited)
    found = changes(parsed(tmp, data, "a.yaml"), parsed(tmp, edited, "b.yaml"))
    assert [c.path for c in found] == [path], [c.render() for c in found]


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

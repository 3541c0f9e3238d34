"""Property-based tests over random valid specs (and their mutations): the compiler's contract.

Generated specs vary families, widths, layer counts, block partitions, projector kinds, mixture modes,
embedding/head modes and tasks. For each: it validates and compiles, the graph checks pass, the model's
parameter count equals the graph's, outputs have the right shapes, the canonical form is a fixed
point, one-hot mixtures reproduce the selected component, and discretization keeps exactly the
selected segments. Invalid specs give located errors, exit status 2 and no traceback. The strategies and
the invariants are the public ones (``hybridc.testing``).
"""

from __future__ import annotations

import re

import torch
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, assume, given, settings

from hybridc.cli import main
from hybridc.graph.selection import select
from hybridc.models.hybrid import lower
from hybridc.spec import load_spec
from hybridc.spec.frontend import parse_file
from hybridc.testing import invariants as inv
from hybridc.testing.specs import rows_of
from hybridc.testing.specs import text as spec_text
from hybridc.testing.strategies import VOCAB, bad_specs, specs

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def write(tmp_path, data: dict, name: str = "spec.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@settings(max_examples=40, **SETTINGS)
@given(data=specs())
def test_generated_specs_compile_and_lower_faithfully(tmp_path_factory, data):
    import hybridc

    tmp_path = tmp_path_factory.mktemp("prop")
    path = write(tmp_path, data)
    compiled = hybridc.compile(path)
    rs, graph = compiled.resolved, compiled.graph

    # canonical form is a fixed point and means the same spec
    text = parse_file(path).canonical_text()
    again = write(tmp_path, {}, "canonical.yaml")
    again.write_text(text)
    assert parse_file(again).canonical_text() == text
    assert parse_file(again).spec == rs.spec

    model = lower(rs).eval()
    inv.parameters_match_graph(model)
    assert sum(p.numel() for p in model.parameters()) == graph.total_params
    ids = torch.randint(0, VOCAB, (2, 6), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = model(ids).logits
    task = rs.spec.task
    expected = {"causal-lm": (2, 6, rs.vocab_size), "classify": (2, 3), "tag": (2, 6, 4)}[task.kind]
    assert tuple(logits.shape) == expected and torch.isfinite(logits).all()
    alphas = model.alphas()
    assert alphas.shape == (rs.num_blocks, len(rs.names)) and torch.allclose(alphas.sum(-1), torch.ones(rs.num_blocks))

    # one-hot on one component everywhere, with its embedding and head: the component's own logits
    rows = rows_of(data["hybrid"]["mixture"])
    chosen = {select([r], rs.names)[0] for r in rows} if rows else set()
    one_hot = rows and len(chosen) == 1 and all(max(r) == 1.0 for r in rows)
    m = next(iter(chosen)) if one_hot else None
    if one_hot and task.kind == "causal-lm" and rs.spec.tokenizer == m and {
            data["hybrid"]["embeddings"], data["hybrid"]["head"]} <= {"mix", m}:
        assert inv.one_hot_is_component(rs, m) <= 1e-5

    # discretization keeps exactly the selected segments
    selection = list(select(rows or alphas.tolist(), rs.names))
    small = lower(rs, selection=selection)
    assert [list(b.segments) for b in small.blocks] == [[s] for s in selection]
    inv.parameters_match_graph(small)


LOCATED = re.compile(r"^.+:\d+:\d+: error: .+$")


@settings(max_examples=60, **SETTINGS)
@given(bad=bad_specs())
def test_bad_specs_give_located_errors(tmp_path_factory, bad):
    """One mistake (``hybridc.testing.strategies.bad_specs``) in a generated spec: its error on its line, and
    from the CLI exit status 2, every error located in the file, no traceback."""
    inv.error_is_located(bad)
    path = tmp_path_factory.mktemp("bad") / "spec.yaml"
    path.write_text(spec_text(bad.spec))
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2, (bad.what, result.output)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)
    errors = [line for line in lines if ": error: " in line]
    assert errors and all(LOCATED.match(line) for line in errors), result.output
    assert all(line.startswith(str(path)) for line in errors)
    assert bad.message in result.output, (bad.what, result.output)


@settings(max_examples=30, **SETTINGS)
@given(data=specs())
def test_a_searched_generated_spec_trains_its_alphas(tmp_path_factory, data):
    assume(data["hybrid"]["mixture"] == "search")
    rs = load_spec(write(tmp_path_factory.mktemp("s"), data))
    model = lower(rs)
    assert {name for name, _ in model.param_groups()["alphas"]} == {f"blocks.{i}.mix.logits" for i in range(rs.num_blocks)}

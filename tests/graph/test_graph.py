"""The block graph: node ids, attributes, checks, discretization as a transform, rendering."""

from __future__ import annotations

import networkx as nx
import pytest

from hybridc.errors import CompileError
from hybridc.graph.build import build_graph
from hybridc.graph.wellformed import check_graph
from hybridc.graph.selection import discretize_graph, select
from hybridc.graph.render import to_dot, to_png, to_text
from hybridc.spec import load_spec
from tests.specs import SMALL, write_spec


@pytest.fixture
def rs(tmp_path):
    return load_spec(write_spec(tmp_path, SMALL))


def layers(rs):
    return {c.name: c.num_layers for c in rs.components}


def test_node_ids_and_edges(rs):
    bg = build_graph(rs)
    ids = [n.id for n in bg.nodes()]
    assert ids == ["embed", "b0/attn/in", "b0/ssm/in", "b0/attn/seg", "b0/ssm/seg", "b0/attn/out", "b0/ssm/out",
                   "b0/mix", "b1/attn/in", "b1/ssm/in", "b1/attn/seg", "b1/ssm/seg", "b1/attn/out", "b1/ssm/out",
                   "b1/mix", "head"]
    g = bg.graph
    assert g.has_edge("embed", "b0/ssm/in") and g.has_edge("b0/ssm/out", "b0/mix") and g.has_edge("b0/mix", "b1/attn/in")
    assert g.nodes["b1/ssm/seg"]["layers"] == "1..3" and g.nodes["b1/ssm/seg"]["component"] == "ssm"
    assert g.nodes["b0/ssm/in"]["d_in"] == 32 and g.nodes["b0/ssm/in"]["d_out"] == 24
    assert bg.node("b0/attn/in").projector == "linear" and bg.node("b0/ssm/in").projector == "mlp"
    assert nx.is_directed_acyclic_graph(g)
    check_graph(bg, layers(rs))


def test_graph_is_deterministic(rs):
    a, b = build_graph(rs), build_graph(rs)
    assert [n for n in a.nodes()] == [n for n in b.nodes()]
    assert sorted(a.graph.edges) == sorted(b.graph.edges)


def test_checks_catch_a_broken_graph(rs):
    bg = build_graph(rs)
    bg.graph.add_edge("head", "embed")
    with pytest.raises(CompileError, match="cycle"):
        check_graph(bg, layers(rs))
    bg = build_graph(rs)
    bg.graph.remove_node("b1/ssm/seg")
    with pytest.raises(CompileError):
        check_graph(bg, layers(rs))
    with pytest.raises(CompileError, match="end at layer 3, but it has 5"):
        check_graph(build_graph(rs), {"attn": 4, "ssm": 5})


def test_select_breaks_ties_to_the_first():
    assert select([[0.5, 0.5], [0.2, 0.8], [0.4, 0.3, 0.3]], ["a", "b", "c"]) == ("a", "b", "a")


def test_discretized_graph_keeps_only_the_selection(rs):
    bg = discretize_graph(rs, ["ssm", "ssm"])
    kinds = [(n.id, n.kind) for n in bg.nodes()]
    # embeddings: mix -> block 0's choice (ssm); no switch anywhere -> no projectors, no mixers
    assert kinds == [("embed", "embed"), ("b0/ssm/seg", "segment"), ("b1/ssm/seg", "segment"), ("head", "head")]
    assert bg.node("embed").components == ("ssm",) and bg.node("head").components == ("ssm",)
    check_graph(bg, layers(rs))
    switch = discretize_graph(rs, ["ssm", "attn"])
    assert [n.id for n in switch.nodes()] == ["embed", "b0/ssm/seg", "b1/attn/in", "b1/attn/seg", "b1/attn/out", "head"]
    check_graph(switch, layers(rs))
    assert switch.total_params < build_graph(rs).total_params


def test_discretized_switch_at_block_zero_when_embedding_is_fixed(tmp_path):
    rs = load_spec(write_spec(tmp_path, SMALL.replace("hybrid:\n", "hybrid:\n  embeddings: attn\n")))
    ids = [n.id for n in discretize_graph(rs, ["ssm", "ssm"]).nodes()]
    assert ids[:4] == ["embed", "b0/ssm/in", "b0/ssm/seg", "b0/ssm/out"]


def test_renderings(rs, tmp_path):
    bg = build_graph(rs)
    text = to_text(bg)
    assert "b1/ssm/seg" in text and "ssm layers 1..3" in text and "total:" in text
    dot = to_dot(bg)
    assert dot.startswith("digraph hybrid {") and '"b0/mix" -> "b1/attn/in";' in dot and "cluster_b1" in dot
    png = to_png(bg, tmp_path / "g.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("selection", [None, ("ssm", "shared"), ("shared", "ssm"), ("shared", "shared")])
def test_parameters_several_layers_share_are_counted_once_where_they_run(tmp_path, selection):
    """Zamba2's shared blocks serve layers of both blocks: the graph counts them once, in the first segment
    that runs one of their layers, so every graph's total is its model's (continuous and discretized)."""
    from hybridc.models.hybrid import lower

    text = SMALL.replace("attn:\n    init: {family: gpt-neox, hidden_size: 32, layers: 4, heads: 4, vocab_size: 64, max_length: 64}",
                         "shared:\n    init: {family: zamba2, hidden_size: 32, layers: 6, heads: 4, vocab_size: 64, "
                         "max_length: 64, mamba_d_state: 16, chunk_size: 16}")
    text = text.replace("{attn: linear, ssm: mlp}", "{shared: linear, ssm: mlp}")
    resolved = load_spec(write_spec(tmp_path, text))
    graph = build_graph(resolved) if selection is None else discretize_graph(resolved, selection)
    model = lower(resolved, selection=list(selection) if selection else None, pretrained=False)
    assert graph.total_params == sum(p.numel() for p in model.parameters())

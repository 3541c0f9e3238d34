"""Discretization under a budget: the frontier against brute force over every selection's real graph."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hybridc.graph.budget import best_within, evidence, frontier
from hybridc.graph.discretize import discretize_graph, select
from hybridc.spec import load_spec
from tests.specs import write_spec

FAMILIES = {  # small from-scratch components of different widths and costs
    "attn": "{family: gpt-neox, hidden_size: 32, layers: 4, heads: 4, vocab_size: 64, max_length: 64}",
    "ssm": "{family: mamba, hidden_size: 24, layers: 4, vocab_size: 64}",
    "wide": "{family: llama, hidden_size: 48, layers: 4, heads: 4, vocab_size: 64, max_length: 64}",
}


def spec_of(tmp_path, names, blocks, projectors, embeddings, head):
    components = "".join(f"  {m}:\n    init: {FAMILIES[m]}\n    blocks: split({blocks})\n" for m in names)
    text = (f"hybridc: 1\nname: budget\ncomponents:\n{components}"
            f"hybrid: {{projector: {{{', '.join(f'{m}: {p}' for m, p in zip(names, projectors))}}}, "
            f"embeddings: {embeddings}, head: {head}, mixture: search}}\n"
            "train:\n  stages:\n    - {name: align, data: \"recall(vocab=16, length=16)\", steps: 1}\n")
    return load_spec(write_spec(tmp_path, text))


def brute_force(rs, alphas):
    """Every selection with the FLOPs of its discretized graph and its evidence."""
    out = []
    for selection in itertools.product(rs.names, repeat=rs.num_blocks):
        graph = discretize_graph(rs, selection)
        out.append((graph.flops_per_token, evidence(alphas, rs.names, selection), selection))
    return out


@st.composite
def cases(draw):
    names = draw(st.permutations(sorted(FAMILIES)).map(lambda p: p[:draw(st.integers(2, 3))]))
    blocks = draw(st.integers(1, 4))
    projectors = [draw(st.sampled_from(["linear", "mlp", "none"])) for _ in names]
    embeddings, head = (draw(st.sampled_from(["mix", *names])) for _ in range(2))
    rows = [draw(st.lists(st.floats(0.01, 1.0), min_size=len(names), max_size=len(names))) for _ in range(blocks)]
    alphas = [[a / sum(row) for a in row] for row in rows]
    return names, blocks, projectors, embeddings, head, alphas


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=cases())
def test_the_frontier_is_the_pareto_set_of_every_selection(tmp_path_factory, case):
    names, blocks, projectors, embeddings, head, alphas = case
    if "none" in projectors and len({FAMILIES[m] for m in names}) > 1:
        projectors = ["linear" if p == "none" else p for p in projectors]  # 'none' needs equal widths
    rs = spec_of(tmp_path_factory.mktemp("budget"), names, blocks, projectors, embeddings, head)
    points = frontier(rs, alphas)
    everything = brute_force(rs, alphas)
    real = {selection: cost for cost, _, selection in everything}
    for p in points:  # each point's cost is its real graph's
        assert p.cost == real[p.selection]
        assert p.evidence == pytest.approx(evidence(alphas, rs.names, p.selection))
    for p in points:  # no selection has at most a frontier point's cost and more evidence
        assert not any(c <= p.cost and e > p.evidence + 1e-9 for c, e, _ in everything), p
    for cost, ev, selection in everything:  # and every selection is matched or beaten by one
        assert any(p.cost <= cost and p.evidence >= ev - 1e-9 for p in points), selection
    # the budget's choice is the most probable selection within it, and the cheapest frontier point is the
    # cheapest of all; with no budget that binds, the choice is argmax
    for budget in sorted({c for c, _, _ in everything}):
        chosen = best_within(points, budget)
        feasible = [ev for c, ev, _ in everything if c <= budget]
        assert chosen.cost <= budget and chosen.evidence == pytest.approx(max(feasible))
    assert points[0].cost == min(real.values())
    unbounded = best_within(points, math.inf)  # as probable as argmax (the same selection unless alphas tie)
    assert unbounded.evidence == pytest.approx(evidence(alphas, rs.names, select(alphas, rs.names)))
    assert best_within(points, points[0].cost - 1) is None


def test_a_tight_budget_trades_the_expensive_component_for_the_cheap_one(tmp_path):
    """Crafted: the wide component is preferred in every block, but only one block of it fits."""
    rs = spec_of(tmp_path, ["wide", "ssm"], 3, ["linear", "linear"], "wide", "wide")
    alphas = [[0.9, 0.1], [0.6, 0.4], [0.8, 0.2]]
    points = frontier(rs, alphas)
    assert best_within(points, math.inf).selection == ("wide", "wide", "wide")
    everything = brute_force(rs, alphas)
    budget = max(c for c, _, s in everything if s.count("wide") <= 1)
    chosen = best_within(points, budget)
    assert chosen.selection == ("wide", "ssm", "ssm")  # keeps the block where wide is surest
    assert chosen.evidence == pytest.approx(max(ev for c, ev, _ in everything if c <= budget))
    assert select(alphas, rs.names) == ("wide", "wide", "wide")

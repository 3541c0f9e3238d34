"""Discretization under a budget: the frontier against brute force over every selection's real graph."""

from __future__ import annotations

import itertools
import json
import math
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hybridc.graph.budget import best_within, evidence, frontier
from hybridc.graph.selection import discretize_graph, select
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


# ---- the spec's budget -------------------------------------------------------------------------------------


def budget_spec(tmp_path, names, blocks, alphas, budget, stages=""):
    """A fixed-mixture spec over ``names`` with ``hybrid.budget: budget`` (a YAML flow mapping)."""
    components = "".join(f"  {m}:\n    init: {FAMILIES[m]}\n    blocks: split({blocks})\n" for m in names)
    rows = "[" + ", ".join("[" + ", ".join(repr(a) for a in row) + "]" for row in alphas) + "]"
    text = (f"hybridc: 1\nname: budgeted\ncomponents:\n{components}"
            f"hybrid:\n  mixture: fixed({rows})\n  budget: {budget}\n"
            f"train:\n  seed: 5\n  checkpoint_every: 0\n  stages:{' []' if not stages else ''}\n{stages}")
    return write_spec(tmp_path, text)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=cases(), share=st.floats(0.2, 1.0),
       measure=st.sampled_from(["flops_per_token", "params", "decode_params", "decode_state"]))
def test_the_specs_budget_is_met_by_the_most_probable_selection_within_it(tmp_path_factory, case, share, measure):
    """``selection_for`` (what every discretize path keeps) against brute force over every selection's real
    graph: within the budget, and no selection within it is more probable; none at all when none fits."""
    from hybridc.errors import SpecError
    from hybridc.graph.budget import MEASURES, cost_of, selection_for
    from hybridc.graph.build import build_graph

    names, blocks, _, _, _, alphas = case
    rs = load_spec(budget_spec(tmp_path_factory.mktemp("budget"), names, blocks, alphas,
                               f"{{{measure}: {share!r}x}}"))
    cost = MEASURES[measure]
    limit = share * cost_of(build_graph(rs), cost)
    everything = [(cost_of(discretize_graph(rs, s), cost), evidence(alphas, rs.names, s), s)
                  for s in itertools.product(rs.names, repeat=rs.num_blocks)]
    feasible = [(c, e, s) for c, e, s in everything if c <= limit]
    if not feasible:
        with pytest.raises(SpecError, match=f"no discretization fits hybrid.budget.{measure}"):
            selection_for(rs, alphas)
        return
    chosen = selection_for(rs, alphas)
    assert cost_of(discretize_graph(rs, chosen), cost) <= limit
    assert evidence(alphas, rs.names, chosen) == pytest.approx(max(e for _, e, _ in feasible))


@pytest.mark.parametrize("written, canonical", [("{flops_per_token: 0.6x}", "{flops_per_token: 0.6x}"),
                                                ("{params: 20000}", "{params: 20000}"),
                                                ("{flops_per_token: 1.5e4}", "{flops_per_token: 15000}"),
                                                ("{params: ' 2x '}", "{params: 2.0x}")])
def test_a_budget_round_trips_through_the_canonical_form(tmp_path, written, canonical):
    from hybridc.spec import parse_file

    parsed = parse_file(budget_spec(tmp_path, ["attn", "ssm"], 2, [[0.5, 0.5], [0.5, 0.5]], written))
    text = parsed.canonical_text(keep_comments=False)
    assert f"  budget: {canonical}\n" in text
    again = parse_file(write_spec(tmp_path, text, "again.yaml"))
    assert again.spec.hybrid.budget == parsed.spec.hybrid.budget


@pytest.mark.parametrize("written, message, col", [
    ("{flops_per_token: 0.05x}", r"no discretization fits hybrid.budget.flops_per_token 0.05x .*the cheapest, "
                                 r"ssm \| ssm, needs", 29),
    ("{params: 10}", "no discretization fits hybrid.budget.params 10", 20),
    ("{flops_per_token: 0x}", "must be a positive number or a multiple such as 0.6x", 29),
    ("{flops_per_token: -3}", "must be > 0", 29),
    ("{flops_per_token: 1, params: 2}", "limits one measure", 32),
    ("{flops: 0.5x}", "unknown key 'flops'", 12),
    ("{decode_state: 0.01x}", "no discretization fits hybrid.budget.decode_state 0.01x", 26),
    ("{}", "is empty", 11),
])
def test_a_bad_or_unmet_budget_is_a_located_error_at_validate(tmp_path, written, message, col):
    from click.testing import CliRunner

    from hybridc.cli import main

    path = budget_spec(tmp_path, ["attn", "ssm"], 2, [[0.5, 0.5], [0.5, 0.5]], written)
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert re.search(message, result.output), result.output
    line = next(k for k, text in enumerate(path.read_text().splitlines(), 1) if "budget:" in text)
    assert f"{path}:{line}:{col}: error: " in result.output and "Traceback" not in result.output


def test_a_run_discretizes_to_the_budgets_choice_and_reports_it(tmp_path):
    """Through a real run: the discretize stage keeps the budget's choice, not argmax; compile lists both."""
    from click.testing import CliRunner

    from hybridc.cli import main
    from hybridc.graph.budget import cost_of, flops
    from hybridc.graph.build import build_graph

    alphas = [[0.9, 0.1], [0.6, 0.4], [0.8, 0.2]]
    stages = ("    - {name: discretize}\n"
              "    - {name: retrain, data: \"recall(vocab=16, length=16, examples=64)\", steps: 2, batch_size: 4}\n")
    probe = load_spec(budget_spec(tmp_path, ["wide", "ssm"], 3, alphas, "{params: 1.0x}", stages))
    everything = {s: cost_of(discretize_graph(probe, s), flops) for s in itertools.product(probe.names, repeat=3)}
    limit = max(c for s, c in everything.items() if s.count("wide") <= 1)  # only one block of wide fits
    path = budget_spec(tmp_path, ["wide", "ssm"], 3, alphas,
                       f"{{flops_per_token: {limit / cost_of(build_graph(probe), flops)!r}x}}", stages)
    compiled = CliRunner().invoke(main, ["compile", str(path)])
    assert compiled.exit_code == 0, compiled.output
    assert re.search(r"wide \| wide \| wide .*argmax, over budget", compiled.output)
    assert re.search(r"wide \| ssm \| ssm .*budget's choice", compiled.output)
    shown = CliRunner().invoke(main, ["graph", str(path), "--discretize", "budget"])
    assert shown.exit_code == 0 and "discretized: wide | ssm | ssm" in shown.output, shown.output
    trained = CliRunner().invoke(main, ["train", str(path), "-o", str(tmp_path / "run"), "--quiet"])
    assert trained.exit_code == 0, trained.output
    config = json.loads((tmp_path / "run" / "final" / "config.json").read_text())
    assert json.dumps(["wide", "ssm", "ssm"]) in json.dumps(config)


# ---- cost-aware search -------------------------------------------------------------------------------------


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=cases())
def test_the_cost_table_gives_every_selections_cost_and_the_expected_cost(tmp_path_factory, case):
    """Against every selection's real graph: its cost, and E[cost] = sum over selections of P(selection) x cost."""
    from hybridc.graph.budget import cost_table

    names, blocks, projectors, embeddings, head, alphas = case
    if "none" in projectors and len({FAMILIES[m] for m in names}) > 1:
        projectors = ["linear" if p == "none" else p for p in projectors]
    rs = spec_of(tmp_path_factory.mktemp("table"), names, blocks, projectors, embeddings, head)
    table = cost_table(rs)
    index = {m: j for j, m in enumerate(rs.names)}
    expected = 0.0
    for cost, _, selection in brute_force(rs, alphas):
        assert table.cost(selection) == cost
        expected += math.prod(row[index[m]] for row, m in zip(alphas, selection)) * cost
    assert table.expected(alphas) == pytest.approx(expected, rel=1e-9)


def searched(tmp_path, budget: str | None, algorithm: str, steps: int = 12):
    """A searched 2-block wide + ssm hybrid after ``steps`` search steps: (model, its search)."""
    import torch

    from hybridc.data import build_data
    from hybridc.models.hybrid import lower
    from hybridc.train.loop import build_optimizers, freeze_for, train_steps

    components = "".join(f"  {m}:\n    init: {FAMILIES[m]}\n    blocks: split(2)\n" for m in ("wide", "ssm"))
    text = (f"hybridc: 1\nname: costaware\ncomponents:\n{components}hybrid:\n  mixture: search\n"
            + (f"  budget: {budget}\n" if budget else "")
            + "train:\n  seed: 2\n  stages:\n"
            f"    - {{name: search, search: '{algorithm}', data: 'recall(vocab=16, length=16, examples=128)', "
            f"steps: {steps}, batch_size: 4}}\n")
    rs = load_spec(write_spec(tmp_path, text, f"{abs(hash((budget, algorithm)))}.yaml"))
    stage = rs.spec.train.stages[0]
    data = build_data(stage.data, task=rs.spec.task, tokenizer=None, seed=0, base_dir=tmp_path,
                      location=rs.source_map.at("train"))
    torch.manual_seed(0)
    model = lower(rs)
    freeze_for(model, stage)
    optim = build_optimizers(model, stage, steps)
    for _ in train_steps(model, stage, steps, 0, data, optim, seed=0, device=torch.device("cpu"),
                         backward=lambda loss: loss.backward(),
                         clip=lambda params, norm: torch.nn.utils.clip_grad_norm_(params, norm)):
        pass
    return model, optim.search


@pytest.mark.parametrize("algorithm", ["darts(lr=0.2)", "dash(lr=0.2)", "gaea(lr=0.5)"])
def test_a_search_under_a_loose_budget_is_the_plain_search(tmp_path, algorithm):
    import torch

    plain, _ = searched(tmp_path, None, algorithm)
    loose, search = searched(tmp_path, "{flops_per_token: 1.0x}", algorithm)
    assert search.bound is not None and search.multiplier == 0.0
    a, b = plain.state_dict(), loose.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("algorithm", ["darts(lr=0.2)", "gaea(lr=0.5)"])
def test_a_tight_budget_pulls_the_search_toward_what_fits(tmp_path, algorithm):
    """wide costs more than ssm: under a budget a little above all-ssm, the multiplier rises and the search
    ends with less weight on wide, and a lower expected cost, than the plain search."""
    from hybridc.graph.budget import cost_table

    plain, _ = searched(tmp_path, None, algorithm, steps=20)
    rs = plain.resolved_spec
    table = cost_table(rs)
    share = 1.05 * table.cost(("ssm", "ssm")) / plain.graph.flops_per_token
    tight, search = searched(tmp_path, f"{{flops_per_token: {share:.4f}x}}", algorithm, steps=20)
    assert search.multiplier > 0
    wide = rs.names.index("wide")
    before, after = plain.alphas()[:, wide], tight.alphas()[:, wide]
    assert (after < before).all(), (before, after)
    assert table.expected(tight.alphas().tolist()) < table.expected(plain.alphas().tolist())
    state = search.state_dict()  # the multiplier is part of the checkpointed search state
    assert state["multiplier"] == search.multiplier


def test_a_decode_state_budget_over_a_family_whose_state_is_unknown_is_refused_at_validate(tmp_path):
    from click.testing import CliRunner

    from hybridc.cli import main

    text = ("hybridc: 1\nname: unknown\ncomponents:\n"
            "  rnn:\n    init: {family: rwkv, hidden_size: 32, layers: 2, vocab_size: 64}\n    blocks: split(2)\n"
            f"  ssm:\n    init: {FAMILIES['ssm']}\n    blocks: split(2)\n"
            "hybrid:\n  mixture: search\n  budget: {decode_state: 0.5x}\ntrain:\n  stages: []\n")
    path = write_spec(tmp_path, text)
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"{path}:12:26: error: the decode state of rnn (rwkv) is not known" in result.output
    assert "budget another measure" in result.output
    ok = CliRunner().invoke(main, ["validate", str(write_spec(tmp_path, text.replace("decode_state", "decode_params"),
                                                                   "ok.yaml"))])
    assert ok.exit_code == 0, ok.output


def test_a_budget_without_search_or_discretize_is_warned_about(tmp_path):
    from click.testing import CliRunner

    from hybridc.cli import main

    idle = budget_spec(tmp_path, ["attn", "ssm"], 2, [[0.5, 0.5], [0.5, 0.5]], "{params: 0.9x}")
    result = CliRunner().invoke(main, ["validate", str(idle)])
    assert result.exit_code == 0 and "warning: hybrid.budget has no effect" in result.output
    used = write_spec(tmp_path, idle.read_text().replace("stages: []", "stages:\n    - {name: discretize}"), "used.yaml")
    result = CliRunner().invoke(main, ["validate", str(used)])
    assert result.exit_code == 0 and "warning" not in result.output, result.output

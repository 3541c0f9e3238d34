"""Discretization under a cost budget: per block the component that keeps the most of the searched mixture
while the pruned hybrid's cost stays within the budget.

A discretized hybrid's cost is a sum over its graph's nodes (``discretize_graph``): the embedding and head
(from block 0's choice when they are mixed), each block's segment, and a block's projectors where its
component differs from the one before. So the cost of a selection (m_0, ..., m_{N-1}) is a chain:

    cost = ends(m_0) + sum_i step(i, m_{i-1}, m_i)        (m_{-1}: the embedding's component)

and its evidence is sum_i log alpha[i][m_i] (the selection's log-probability under the searched mixture,
read as independent per block). ``frontier`` keeps, block by block and per last component, only the
selections no other beats in both cost and evidence (a Pareto set: exact, and small for the block and
component counts hybrids have); the best selection within a budget is read off it. Plain argmax is the
frontier's most probable point.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..errors import Diagnostic, SpecError
from ..spec.frontend import ResolvedSpec
from ..spec.model import Budget
from .build import build_graph, component_costs, embed_node, head_node, projector_node, segment_node
from .blockgraph import BlockGraph, GraphNode

Measure = Callable[[GraphNode], int]  # a node's cost (e.g. its FLOPs per token): additive over nodes


def flops(node: GraphNode) -> int:
    return node.flops


def params(node: GraphNode) -> int:
    return node.params


def decode_params(node: GraphNode) -> int:
    return node.decode_params


def decode_state(node: GraphNode) -> int:
    if node.decode_state is None:
        raise ValueError(f"{node.id}: decode state unknown")
    return node.decode_state


# the spec's budget measures (spec.model.BUDGET_MEASURES)
MEASURES: dict[str, Measure] = {"flops_per_token": flops, "params": params, "decode_params": decode_params,
                                "decode_state": decode_state}


@dataclass(frozen=True)
class Choice:
    """One discretization: its cost under the measure and its evidence (log-probability under the alphas)."""

    cost: int
    evidence: float
    selection: tuple[str, ...]


def evidence(alphas: Sequence[Sequence[float]], names: Sequence[str], selection: Sequence[str]) -> float:
    """sum_i log alpha[i][m_i]; -inf where a chosen alpha is 0."""
    index = {m: j for j, m in enumerate(names)}
    return sum(_log(row[index[m]]) for row, m in zip(alphas, selection))


def _log(alpha: float) -> float:
    return math.log(alpha) if alpha > 0 else -math.inf


def _pareto(choices: list[Choice]) -> list[Choice]:
    """The choices no other has at most the cost and more evidence, cheapest first (of equal ones, the
    selection that sorts first)."""
    kept: list[Choice] = []
    for c in sorted(choices, key=lambda c: (c.cost, -c.evidence, c.selection)):
        if not kept or c.evidence > kept[-1].evidence:
            kept.append(c)
    return kept


@dataclass(frozen=True)
class CostTable:
    """A discretization's cost as a chain over blocks, under one measure (component j = ``names[j]``):

        cost(m_0..m_{N-1}) = ends[m_0] + sum_i (segment[i][m_i] + [m_i != m_{i-1}] switch[i][m_i])

    with m_{-1} the embedding's component (block 0's own choice when embeddings are mixed)."""

    names: tuple[str, ...]
    embed_from: str | None  # None: mixed (block 0's choice)
    ends: tuple[int, ...]  # per component chosen in block 0: the embedding and head it brings
    segment: tuple[tuple[int, ...], ...]  # (N, M): block i's layers of component j
    switch: tuple[tuple[int, ...], ...]  # (N, M): block i's in and out projectors of component j

    def embedded(self, first: str) -> str:
        return first if self.embed_from is None else self.embed_from

    def step(self, block: int, before: str, m: str) -> int:
        j = self.names.index(m)
        return self.segment[block][j] + (self.switch[block][j] if m != before else 0)

    def cost(self, selection: Sequence[str]) -> int:
        total, before = self.ends[self.names.index(selection[0])], self.embedded(selection[0])
        for block, m in enumerate(selection):
            total, before = total + self.step(block, before, m), m
        return total

    def expected(self, alphas):
        """E[cost] when block i picks component j with probability alphas[i][j], independently per block: the
        sum of each term times its probability (a projector pair is paid when the component changes). Plain
        arithmetic on ``alphas[i][j]``: floats, or the entries of a tensor (then differentiable)."""
        total = 0.0
        for i, row in enumerate(alphas):
            for j, m in enumerate(self.names):
                if i == 0:
                    change = 0.0 if self.embed_from in (None, m) else 1.0
                    term = self.ends[j] + self.segment[0][j] + change * self.switch[0][j]
                else:
                    term = self.segment[i][j] + (1 - alphas[i - 1][j]) * self.switch[i][j]
                total = total + row[j] * term
        return total


def cost_table(rs: ResolvedSpec, measure: Measure = flops) -> CostTable:
    """The chain of costs of ``rs``'s discretizations under ``measure``, from the graph's own node builders."""
    names = rs.names
    costs = component_costs(rs)
    embed_from = None if rs.spec.hybrid.embeddings == "mix" else rs.spec.hybrid.embeddings
    head = rs.spec.hybrid.head if rs.spec.task.kind in ("causal-lm", "compress") else "mix"

    def ends(first: str) -> int:
        source = first if embed_from is None else embed_from
        return measure(embed_node(rs, costs, (source,))) + measure(
            head_node(rs, costs, (first if head == "mix" else head,), (source,)))

    return CostTable(
        names=names, embed_from=embed_from, ends=tuple(ends(m) for m in names),
        segment=tuple(tuple(measure(segment_node(rs, costs, i, m)) for m in names) for i in range(rs.num_blocks)),
        switch=tuple(tuple(measure(projector_node(rs, i, m, "in")) + measure(projector_node(rs, i, m, "out"))
                           for m in names) for i in range(rs.num_blocks)))


def frontier(rs: ResolvedSpec, alphas: Sequence[Sequence[float]], measure: Measure = flops) -> list[Choice]:
    """Every selection not beaten in both cost and evidence by another, cheapest first."""
    names = rs.names
    order = {m: j for j, m in enumerate(names)}
    table = cost_table(rs, measure)
    step = table.step

    done: list[Choice] = []
    for first in names:  # the ends depend on block 0's choice: one chain per first component
        start = Choice(table.ends[order[first]] + step(0, table.embedded(first), first),
                       evidence(alphas[:1], names, (first,)), (first,))
        chains = {first: [start]}
        for block in range(1, rs.num_blocks):
            row = alphas[block]
            grown: dict[str, list[Choice]] = {}
            for before, sets in chains.items():
                for m in names:
                    gain = _log(row[order[m]])
                    extra = step(block, before, m)
                    grown.setdefault(m, []).extend(
                        Choice(c.cost + extra, c.evidence + gain, c.selection + (m,)) for c in sets)
            chains = {m: _pareto(found) for m, found in grown.items()}
        done.extend(c for found in chains.values() for c in found)
    return _pareto(done)


def best_within(points: Sequence[Choice], budget: float) -> Choice | None:
    """The most probable selection whose cost is at most ``budget`` (None when none is)."""
    feasible = [c for c in points if c.cost <= budget]
    return max(feasible, key=lambda c: (c.evidence, -c.cost)) if feasible else None


def cost_of(bg: BlockGraph, measure: Measure) -> int:
    """A graph's cost under ``measure``: the sum over its nodes."""
    return sum(measure(n) for n in bg.nodes())


@dataclass(frozen=True)
class Budgeted:
    """What a budget asks of a discretization, and what it gets."""

    budget: Budget
    limit: float  # in the measure's units
    continuous: int  # the continuous hybrid's cost
    chosen: Choice | None  # the most probable selection within the limit (None: none fits)
    points: tuple[Choice, ...]  # the frontier, cheapest first


def plan_budget(rs: ResolvedSpec, alphas: Sequence[Sequence[float]], budget: Budget | None = None,
                continuous: BlockGraph | None = None) -> Budgeted:
    """The budgeted choice for ``alphas`` (default budget: the spec's). The chosen selection's real
    discretized graph is checked against the limit: a measure that is not exactly a chain (parameters that
    layers in several blocks share) can only make the walk take the next cheaper frontier point."""
    from .selection import discretize_graph

    budget = budget or rs.spec.hybrid.budget
    if budget is None:
        raise ValueError("the spec has no budget")
    measure = MEASURES[budget.measure]
    continuous = continuous or build_graph(rs)
    unknown = sorted({n.component for n in continuous.nodes() if n.decode_state is None})
    if budget.measure == "decode_state" and unknown:
        families = ", ".join(f"{m} ({rs.component(m).family})" for m in unknown)
        raise SpecError([Diagnostic(rs.source_map.at("hybrid", "budget", budget.measure),
                                    f"the decode state of {families} is not known: transformers' cache of its layers "
                                    "cannot be measured on the meta device", "budget another measure "
                                    "(flops_per_token, params, decode_params)")])
    whole = cost_of(continuous, measure)
    limit = budget.limit(whole)
    points = frontier(rs, alphas, measure)
    ranked = sorted((c for c in points if c.cost <= limit), key=lambda c: (-c.evidence, c.cost, c.selection))
    chosen = next((c for c in ranked if cost_of(discretize_graph(rs, c.selection), measure) <= limit), None)
    return Budgeted(budget, limit, whole, chosen, tuple(points))


def uniform_alphas(rs: ResolvedSpec) -> list[list[float]]:
    """Equal alphas in every block: under them every selection is as probable as any other."""
    return [[1.0 / len(rs.names)] * len(rs.names) for _ in range(rs.num_blocks)]


def selection_for(rs: ResolvedSpec, alphas: Sequence[Sequence[float]],
                  continuous: BlockGraph | None = None) -> tuple[str, ...]:
    """The components a discretize stage keeps: argmax per block, or, with a budget in the spec, the most
    probable selection within it. Raises ``SpecError`` (at the budget) when no selection fits.
    ``continuous``: the spec's continuous graph, when the caller has it (built otherwise)."""
    from .selection import select

    if rs.spec.hybrid.budget is None:
        return select(alphas, rs.names)
    planned = plan_budget(rs, alphas, continuous=continuous)
    if planned.chosen is None:
        raise _unmet(rs, planned)
    return planned.chosen.selection


def check_budget(rs: ResolvedSpec, continuous: BlockGraph | None = None) -> Budgeted | None:
    """At validate: some selection must fit the spec's budget (whatever alphas search finds). Raises a
    located ``SpecError`` naming the cheapest selection when none does."""
    if rs.spec.hybrid.budget is None:
        return None
    planned = plan_budget(rs, rs.alphas or uniform_alphas(rs), continuous=continuous)
    if planned.chosen is None and not any(c.cost <= planned.limit for c in planned.points):
        raise _unmet(rs, planned)
    return planned


def _unmet(rs: ResolvedSpec, planned: Budgeted) -> SpecError:
    budget = planned.budget
    cheapest = min(planned.points, key=lambda c: c.cost)
    share = cheapest.cost / planned.continuous if planned.continuous else math.inf
    where = rs.source_map.at("hybrid", "budget", budget.measure)
    return SpecError([Diagnostic(
        where, f"no discretization fits hybrid.budget.{budget.measure} {budget.amount()} ({planned.limit:,.0f}): "
               f"the cheapest, {' | '.join(cheapest.selection)}, needs {cheapest.cost:,} ({share:.2f}x the continuous "
               f"hybrid's {planned.continuous:,})",
        f"raise the budget to at least {math.ceil(cheapest.cost):,} or {math.ceil(share * 100) / 100:g}x")])

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

from ..spec.frontend import ResolvedSpec
from .build import component_costs, embed_node, head_node, projector_node, segment_node
from .model import GraphNode

Measure = Callable[[GraphNode], int]  # a node's cost (e.g. its FLOPs per token): additive over nodes


def flops(node: GraphNode) -> int:
    return node.flops


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


def frontier(rs: ResolvedSpec, alphas: Sequence[Sequence[float]], measure: Measure = flops) -> list[Choice]:
    """Every selection not beaten in both cost and evidence by another, cheapest first."""
    names = rs.names
    order = {m: j for j, m in enumerate(names)}
    costs = component_costs(rs)
    mixed_embed = rs.spec.hybrid.embeddings == "mix"
    head = rs.spec.hybrid.head if rs.spec.task.kind in ("causal-lm", "compress") else "mix"

    def embedded(first: str) -> str:
        return first if mixed_embed else rs.spec.hybrid.embeddings

    def ends(first: str) -> int:
        embed_from, head_from = embedded(first), first if head == "mix" else head
        return measure(embed_node(rs, costs, (embed_from,))) + measure(head_node(rs, costs, (head_from,), (embed_from,)))

    def step(block: int, before: str, m: str) -> int:
        cost = measure(segment_node(rs, costs, block, m))
        if m != before:
            cost += measure(projector_node(rs, block, m, "in")) + measure(projector_node(rs, block, m, "out"))
        return cost

    done: list[Choice] = []
    for first in names:  # the ends depend on block 0's choice: one chain per first component
        start = Choice(ends(first) + step(0, embedded(first), first), evidence(alphas[:1], names, (first,)), (first,))
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

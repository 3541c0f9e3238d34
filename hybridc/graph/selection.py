"""Discretization as a graph transform: alphas -> one component per block, unselected parts pruned.

Rule (documented in the README): block i keeps only its selected component m_i = argmax alpha_i (ties go
to the first component). The embedding and head come from their configured component, or, when
mixed, from block 0's selection. Block i keeps its input and output projectors only where the
component changes (m_i differs from the previous block's component; for block 0, from the
embedding's component): there the projectors translate between the two components' spaces. Elsewhere
the block is the component's own layers with pad/truncate, so a hybrid whose blocks all select the
embedding's component is that component's own model.
"""

from __future__ import annotations

from collections.abc import Sequence

import networkx as nx

from ..spec.frontend import ResolvedSpec
from .build import build_graph, component_costs, embed_node, graph_facts, head_node, projector_node, segment_node
from .blockgraph import BlockGraph, GraphNode


def select(alphas: Sequence[Sequence[float]], names: Sequence[str]) -> tuple[str, ...]:
    """argmax per block, ties to the first component."""
    out = []
    for row in alphas:
        best = max(range(len(row)), key=lambda j: (row[j], -j))
        out.append(names[best])
    return tuple(out)


def discretize_graph(rs: ResolvedSpec, selection: Sequence[str]) -> BlockGraph:
    """The pruned graph that runs ``selection[i]`` in block i."""
    selection = tuple(selection)
    if len(selection) != rs.num_blocks or any(m not in rs.names for m in selection):
        raise ValueError(f"selection {selection} does not name one component per block")
    costs = component_costs(rs)
    g = nx.DiGraph()

    def add(node: GraphNode, *parents: str) -> str:
        g.add_node(node.id, node=node, **node.attrs())
        for p in parents:
            g.add_edge(p, node.id)
        return node.id

    embeddings = rs.spec.hybrid.embeddings
    embed_from = selection[0] if embeddings == "mix" else embeddings
    prev = add(embed_node(rs, costs, (embed_from,)))
    current = embed_from
    for i, m in enumerate(selection):
        switch = m != current
        if switch:
            prev = add(projector_node(rs, i, m, "in"), prev)
        prev = add(segment_node(rs, costs, i, m, tuple(b for b, s in enumerate(selection) if s == m)), prev)
        if switch:
            prev = add(projector_node(rs, i, m, "out"), prev)
        current = m
    head = rs.spec.hybrid.head if rs.spec.task.kind in ("causal-lm", "compress") else "mix"
    head_from = selection[0] if head == "mix" else head
    add(head_node(rs, costs, (head_from,), (embed_from,)), prev)
    facts = graph_facts(rs)
    return BlockGraph(graph=g, selection=selection, **facts)


def graph_of(rs: ResolvedSpec, selection: list[str] | None) -> BlockGraph:
    """The block graph of ``rs``: continuous, or of one selection (one component per block)."""
    return discretize_graph(rs, selection) if selection is not None else build_graph(rs)

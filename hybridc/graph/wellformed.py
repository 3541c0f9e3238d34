"""Structural checks of a block graph (run after every build and transform)."""

from __future__ import annotations

import networkx as nx

from ..errors import CompileError
from .blockgraph import BlockGraph


def check_graph(bg: BlockGraph, layers: dict[str, int]) -> None:
    """Raise ``CompileError`` unless the graph is a DAG from ``embed`` to ``head`` whose segments use
    every layer of every component once, in order (only the selected components when discretized).

    ``layers`` maps each component to its number of layers.
    """
    g = bg.graph
    if not nx.is_directed_acyclic_graph(g):
        raise CompileError("the block graph has a cycle")
    if "embed" not in g or "head" not in g:
        raise CompileError("the block graph lacks its embed or head node")
    sources = [n for n in g.nodes if g.in_degree(n) == 0]
    sinks = [n for n in g.nodes if g.out_degree(n) == 0]
    if sources != ["embed"] or sinks != ["head"]:
        raise CompileError(f"the block graph must flow from embed to head (sources {sources}, sinks {sinks})")
    for n in g.nodes:
        if not nx.has_path(g, n, "head"):
            raise CompileError(f"node {n} does not reach the head")
    by_component: dict[str, list] = {}
    for node in bg.nodes():
        if node.kind == "segment":
            by_component.setdefault(node.component, []).append((node.block, node.layers))
    for m in bg.names:
        segments = sorted(by_component.get(m, []), key=lambda t: t[0])
        if bg.selection is None:
            blocks = [b for b, _ in segments]
            if blocks != list(range(bg.num_blocks)):
                raise CompileError(f"component {m} has segments in blocks {blocks}, expected 0..{bg.num_blocks - 1}")
            expected = 0
            for b, r in segments:
                if r.start != expected:
                    raise CompileError(f"block {b} of {m} starts at layer {r.start}, expected {expected}")
                expected = r.stop
            if expected != layers[m]:
                raise CompileError(f"the segments of {m} end at layer {expected}, but it has {layers[m]}")
        else:
            chosen = [i for i, s in enumerate(bg.selection) if s == m]
            if [b for b, _ in segments] != chosen:
                raise CompileError(f"discretized graph runs {m} in blocks {[b for b, _ in segments]}, selected {chosen}")

"""The block graph's values: frozen node records and the graph wrapper.

A ``BlockGraph`` is a ``networkx.DiGraph`` whose node ids are deterministic strings
(``embed``, ``b0/neo/in``, ``b0/neo/seg``, ``b0/neo/out``, ``b0/mix``, ..., ``head``) and whose
``"node"`` attribute holds a ``GraphNode``. It carries everything lowering needs: no YAML, no torch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import networkx as nx

from ..spec.model import LayerRange

# node kind -> the parameter group that owns its parameters
GROUP_OF_KIND = {
    "embed": "embeddings",
    "in_proj": "projectors",
    "segment": "components",
    "out_proj": "projectors",
    "mix": "alphas",
    "head": "head",
}


@dataclass(frozen=True)
class GraphNode:
    id: str
    kind: str  # embed | in_proj | segment | out_proj | mix | head
    d_in: int
    d_out: int
    params: int  # parameters this node owns (tied weights are owned once)
    flops: int  # forward FLOPs per token
    block: int | None = None
    decode_params: int = 0  # parameters read per decoded token (an embedding reads one row per source)
    decode_state: int | None = 0  # numbers kept per sequence to decode after the context length; None: unknown
    component: str | None = None
    layers: LayerRange | None = None  # segment: the component's layer range
    projector: str | None = None  # in_proj/out_proj: projector kind
    components: tuple[str, ...] = ()  # embed/head/mix: the components they combine
    head_kind: str | None = None  # head: lm | compress | classify | tag | match
    vocab: tuple[tuple[str, str], ...] = ()  # embed/head: components whose rows are new or transplanted

    @property
    def group(self) -> str:
        return GROUP_OF_KIND[self.kind]

    def attrs(self) -> dict:
        """Plain attributes for networkx/DOT/JSON."""
        out = {
            "kind": self.kind, "d_in": self.d_in, "d_out": self.d_out, "params": self.params, "flops": self.flops,
            "group": self.group, "decode_params": self.decode_params,
        }
        if self.decode_state is not None:
            out["decode_state"] = self.decode_state
        if self.block is not None:
            out["block"] = self.block
        if self.component is not None:
            out["component"] = self.component
        if self.layers is not None:
            out["layers"] = str(self.layers)
        if self.projector is not None:
            out["projector"] = self.projector
        if self.components:
            out["components"] = list(self.components)
        if self.head_kind is not None:
            out["head_kind"] = self.head_kind
        if self.vocab:
            out["vocab"] = dict(self.vocab)
        return out

    def sources_label(self) -> str:
        """``neo+mamba[transplant]``: the components combined, with how their vocabulary rows were made."""
        kinds = dict(self.vocab)
        return "+".join(m + (f"[{kinds[m]}]" if m in kinds else "") for m in self.components)


@dataclass(frozen=True)
class BlockGraph:
    """The compiled hybrid: nodes, edges and the facts lowering needs.

    ``selection`` is None for a continuous (mixed) hybrid and the chosen component per block for a
    discretized one; a discretized block computes u = P_in(h) (or trunc), z = F(u), h' = P_out(z)
    (or pad), with projectors kept only where the component changes.
    """

    graph: nx.DiGraph
    names: tuple[str, ...]  # components, in mixing order
    num_blocks: int
    width: int
    vocab_size: int
    task: str  # causal-lm | compress | classify | tag | match
    num_classes: int | None
    mixture: str  # search | fixed | programmed (continuous graphs)
    alphas: tuple[tuple[float, ...], ...] | None  # fixed/programmed alphas (N x M)
    context_length: int
    selection: tuple[str, ...] | None = None
    families: dict[str, str] = field(default_factory=dict)  # component -> family

    @property
    def discretized(self) -> bool:
        return self.selection is not None

    def node(self, node_id: str) -> GraphNode:
        return self.graph.nodes[node_id]["node"]

    def nodes(self) -> Iterator[GraphNode]:
        """Nodes in a deterministic topological order."""
        for node_id in nx.lexicographical_topological_sort(self.graph, key=_order_key(self)):
            yield self.node(node_id)

    def block_nodes(self, block: int, kind: str) -> list[GraphNode]:
        order = {n: i for i, n in enumerate(self.names)}
        found = [n for n in (self.node(i) for i in self.graph.nodes) if n.block == block and n.kind == kind]
        return sorted(found, key=lambda n: order.get(n.component or "", -1))

    def get(self, node_id: str) -> GraphNode | None:
        return self.graph.nodes[node_id]["node"] if node_id in self.graph else None

    @property
    def total_params(self) -> int:
        return sum(n.params for n in self.nodes())

    @property
    def flops_per_token(self) -> int:
        return sum(n.flops for n in self.nodes())

    @property
    def decode_params(self) -> int:
        """Parameters read to decode one token (every weight but the embedding tables' other rows)."""
        return sum(n.decode_params for n in self.nodes())

    @property
    def decode_state(self) -> int | None:
        """Numbers a sequence keeps for decoding after ``context_length`` tokens (KV caches, recurrent states;
        the hidden stream itself is not counted); None when a component's is unknown."""
        states = [n.decode_state for n in self.nodes()]
        return None if any(s is None for s in states) else sum(states)

    def params_by_group(self) -> dict[str, int]:
        out = {g: 0 for g in ("components", "projectors", "embeddings", "head", "alphas")}
        for n in self.nodes():
            out[n.group] += n.params
        return out


def _order_key(graph: BlockGraph):
    kinds = {"embed": 0, "in_proj": 1, "segment": 2, "out_proj": 3, "mix": 4, "head": 5}
    order = {n: i for i, n in enumerate(graph.names)}

    def key(node_id: str):
        n = graph.graph.nodes[node_id]["node"]
        return (n.block if n.block is not None else (-1 if n.kind == "embed" else 1 << 30),
                kinds[n.kind], order.get(n.component or "", -1), node_id)

    return key

"""Stage: ``ResolvedSpec`` -> ``BlockGraph``. A pure function of the resolved spec (configs only).

    embed -> b0/<m>/in -> b0/<m>/seg -> b0/<m>/out -> b0/mix -> b1/<m>/in -> ... -> b{N-1}/mix -> head

One in/seg/out chain per component per block; each ``mix`` node owns block i's alphas.
"""

from __future__ import annotations

import networkx as nx

from ..components.registry import get_family
from ..errors import HybridcError
from ..spec.frontend import ResolvedSpec
from .cost import linear_params, match_head_biases, match_head_params, projector_flops, projector_params, readout_params
from .blockgraph import BlockGraph, GraphNode


def component_costs(rs: ResolvedSpec):
    """Per component: (family, ParamCounts, forward FLOPs per token of each layer, decode state of each layer
    at the context length) from its config."""
    out = {}
    for rc in rs.components:
        family = get_family(rc.family)

        def measure(config, family=family):
            return (family.param_counts(config), family.layers_flops_per_token(config, rs.context_length),
                    family.layers_decode_state(config, rs.context_length))

        try:
            counts, flops, state = measure(rc.config)
        except HybridcError:
            raise
        except Exception as err:  # the family cannot build (or run) this config: located, naming the key
            from ..spec.build_errors import located_build_error

            raise located_build_error(rs, rc.name, err, measure) from None
        out[rc.name] = (family, counts, flops, state)
    return out


def vocab_kinds(rs: ResolvedSpec, sources: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """The sources whose embedding rows (and head) are ``new`` or ``transplant``ed, with that kind."""
    return tuple((m, rs.component(m).vocab) for m in sources if rs.component(m).vocab != "pretrained")


def embed_node(rs: ResolvedSpec, costs, sources: tuple[str, ...]) -> GraphNode:
    params = sum(costs[m][1].embedding for m in sources)
    rows = sum(rs.component(m).hidden_size for m in sources)  # one row of each source's table per token
    return GraphNode("embed", "embed", d_in=rs.vocab_size, d_out=rs.width, params=params, flops=0, components=sources,
                     vocab=vocab_kinds(rs, sources), decode_params=min(rows, params))


def head_node(rs: ResolvedSpec, costs, sources: tuple[str, ...], embedded: tuple[str, ...]) -> GraphNode:
    """The output head. A tied LM head owns the embedding weight unless the embed node holds it."""
    task = rs.spec.task
    d = rs.width
    if task.kind not in ("causal-lm", "compress"):
        n = task.num_classes or 0
        params = match_head_params(d, n) if task.kind == "match" else linear_params(d, n)
        flops = 2 * (params - match_head_biases(d, n)) if task.kind == "match" else 2 * d * n  # per sequence
        return GraphNode("head", "head", d_in=d, d_out=n, params=params, flops=flops,
                         head_kind=task.kind, decode_params=params)
    params = 0
    flops = 0
    read = 0  # every head weight is read per token, tied ones too (the embed node reads only a row of them)
    for m in sources:
        rc = rs.component(m)
        counts = costs[m][1]
        own = counts.head if counts.head else (0 if m in embedded else counts.embedding)
        params += own
        read += counts.head if counts.head else counts.embedding
        flops += 2 * rc.hidden_size * rc.shape.vocab_size
    kind = "lm"
    if task.kind == "compress":  # every position decoded from the last state, then the LM heads
        kind = "compress"
        params += readout_params(d)
        flops += 2 * 2 * d * d
    return GraphNode("head", "head", d_in=d, d_out=rs.vocab_size, params=params, flops=flops,
                     components=sources, head_kind=kind, vocab=vocab_kinds(rs, sources),
                     decode_params=read + (readout_params(d) if kind == "compress" else 0))


def segment_node(rs: ResolvedSpec, costs, block: int, m: str, present: tuple[int, ...] | None = None) -> GraphNode:
    """Component m's layers of ``block``. ``present``: the blocks where m runs in the graph (default: all);
    parameters several layers share belong to the first of them that runs one of those layers."""
    rc = rs.component(m)
    _, counts, layer_flops, layer_state = costs[m]
    r = rc.ranges[block]
    params = read = sum(counts.layers[r.start:r.stop])
    for count, users in counts.shared:
        runs = [b for b in (present if present is not None else range(rs.num_blocks))
                if any(rc.ranges[b].start <= u < rc.ranges[b].stop for u in users)]
        if runs and runs[0] == block:
            params += count
        if any(r.start <= u < r.stop for u in users):  # read here whichever block owns it
            read += count
    if r.start == 0:
        params += counts.position
        read += rc.hidden_size if counts.position else 0  # one row of a position table per token
    if r.stop == rc.num_layers:
        params += counts.final_norm
        read += counts.final_norm
    states = layer_state[r.start:r.stop]
    return GraphNode(f"b{block}/{m}/seg", "segment", d_in=rc.hidden_size, d_out=rc.hidden_size, params=params,
                     flops=sum(layer_flops[r.start:r.stop]), block=block, component=m, layers=r, decode_params=read,
                     decode_state=None if any(x is None for x in states) else sum(states))


def projector_node(rs: ResolvedSpec, block: int, m: str, direction: str) -> GraphNode:
    kind = rs.spec.hybrid.projector(m)
    d, dm = rs.width, rs.component(m).hidden_size
    d_in, d_out = (d, dm) if direction == "in" else (dm, d)
    params = projector_params(kind, d_in, d_out)
    return GraphNode(f"b{block}/{m}/{direction}", "in_proj" if direction == "in" else "out_proj",
                     d_in=d_in, d_out=d_out, params=params, flops=projector_flops(kind, d_in, d_out), block=block,
                     component=m, projector=kind, decode_params=params)


def mix_node(rs: ResolvedSpec, block: int) -> GraphNode:
    names = rs.names
    learned = rs.spec.hybrid.mixture.mode == "search"
    return GraphNode(f"b{block}/mix", "mix", d_in=rs.width, d_out=rs.width, params=len(names) if learned else 0,
                     flops=4 * rs.width * len(names), block=block, components=names,
                     decode_params=len(names) if learned else 0)


def _sources(rs: ResolvedSpec, mode: str) -> tuple[str, ...]:
    return rs.names if mode == "mix" else (mode,)


def graph_facts(rs: ResolvedSpec) -> dict:
    spec = rs.spec
    return dict(
        names=rs.names, num_blocks=rs.num_blocks, width=rs.width, vocab_size=rs.vocab_size,
        task=spec.task.kind, num_classes=spec.task.num_classes, mixture=spec.hybrid.mixture.mode,
        alphas=rs.alphas, context_length=rs.context_length,
        families={c.name: c.family for c in rs.components},
    )


def build_graph(rs: ResolvedSpec) -> BlockGraph:
    """The continuous block graph of a resolved spec."""
    costs = component_costs(rs)
    g = nx.DiGraph()

    def add(node: GraphNode, *parents: str) -> str:
        g.add_node(node.id, node=node, **node.attrs())
        for p in parents:
            g.add_edge(p, node.id)
        return node.id

    embedded = _sources(rs, rs.spec.hybrid.embeddings)
    prev = add(embed_node(rs, costs, embedded))
    for i in range(rs.num_blocks):
        outs = []
        for m in rs.names:
            a = add(projector_node(rs, i, m, "in"), prev)
            s = add(segment_node(rs, costs, i, m), a)
            outs.append(add(projector_node(rs, i, m, "out"), s))
        prev = add(mix_node(rs, i), *outs)
    head = rs.spec.hybrid.head if rs.spec.task.kind in ("causal-lm", "compress") else "mix"
    add(head_node(rs, costs, _sources(rs, head), embedded), prev)
    return BlockGraph(graph=g, **graph_facts(rs))

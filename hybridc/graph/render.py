"""Render a block graph as a text table, Graphviz DOT, or PNG (Graphviz if installed, else matplotlib)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .blockgraph import BlockGraph, GraphNode


def human(n: int | float | None) -> str:
    """1234567 -> '1.23M'."""
    if n is None:
        return "?"
    for unit, size in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.3g}{unit}"
    return str(int(n))


def _label(n: GraphNode, alphas: tuple[float, ...] | None = None) -> str:
    if n.kind == "segment":
        return f"{n.component} layers {n.layers}"
    if n.kind in ("in_proj", "out_proj"):
        return f"{n.projector} {n.d_in}->{n.d_out}"
    if n.kind == "mix":
        return "mix " + "+".join(n.components) + (f" {list(alphas)}" if alphas else "")
    if n.kind == "embed":
        return "embed " + n.sources_label()
    return (n.head_kind or "head") + " " + n.sources_label()


def to_text(bg: BlockGraph) -> str:
    rows = [("node", "kind", "what", "shape", "params", "FLOPs/token")]
    for n in bg.nodes():
        rows.append((n.id, n.kind, _label(n), f"{n.d_in}->{n.d_out}", human(n.params), human(n.flops)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    total = f"total: {human(bg.total_params)} parameters, {human(bg.flops_per_token)} FLOPs/token " \
            f"(context {bg.context_length}), width {bg.width}, {bg.num_blocks} block(s)"
    if bg.selection is not None:
        total += ", discretized: " + " | ".join(bg.selection)
    return "\n".join(lines + [total]) + "\n"


_COLORS = {"embed": "#d9ead3", "in_proj": "#fff2cc", "segment": "#cfe2f3", "out_proj": "#fff2cc",
           "mix": "#f4cccc", "head": "#d9ead3"}


def to_dot(bg: BlockGraph) -> str:
    """Graphviz DOT: one cluster per block, nodes labelled with what they run, params and FLOPs."""
    out = ["digraph hybrid {", "  rankdir=LR;", '  node [shape=box, style="rounded,filled", fontname="Helvetica"];']

    def node_line(n: GraphNode, indent: str) -> str:
        label = f"{n.id}\\n{_label(n)}\\n{human(n.params)} params"
        return f'{indent}"{n.id}" [label="{label}", fillcolor="{_COLORS[n.kind]}"];'

    for n in bg.nodes():
        if n.block is None:
            out.append(node_line(n, "  "))
    for i in range(bg.num_blocks):
        out.append(f'  subgraph "cluster_b{i}" {{')
        out.append(f'    label="block {i}"; style=dashed;')
        for n in bg.nodes():
            if n.block == i:
                out.append(node_line(n, "    "))
        out.append("  }")
    for a, b in sorted(bg.graph.edges):
        out.append(f'  "{a}" -> "{b}";')
    out.append("}")
    return "\n".join(out) + "\n"


def to_png(bg: BlockGraph, path: Path) -> Path:
    """Write a PNG: through Graphviz's ``dot`` when installed, else drawn with matplotlib."""
    path = Path(path)
    dot = shutil.which("dot")
    if dot:
        subprocess.run([dot, "-Tpng", "-o", str(path)], input=to_dot(bg).encode(), check=True)
        return path
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(bg.names)
    stage_x = {"embed": 0, "in_proj": 1, "segment": 2, "out_proj": 3, "mix": 4}
    positions = {}
    for n in bg.nodes():
        if n.kind == "embed":
            positions[n.id] = (0.0, (len(names) - 1) / 2)
        elif n.kind == "head":
            positions[n.id] = (1 + 4 * bg.num_blocks, (len(names) - 1) / 2)
        elif n.kind == "mix":
            positions[n.id] = (1 + 4 * n.block + 3, (len(names) - 1) / 2)
        else:
            positions[n.id] = (1 + 4 * n.block + stage_x[n.kind] - 1, names.index(n.component))
    width = max(8.0, 1.6 * (2 + 4 * bg.num_blocks))
    fig, ax = plt.subplots(figsize=(width, 1.6 + 1.3 * len(names)))
    for a, b in bg.graph.edges:
        (x0, y0), (x1, y1) = positions[a], positions[b]
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0), arrowprops=dict(arrowstyle="->", color="#888888", lw=0.8))
    for n in bg.nodes():
        x, y = positions[n.id]
        alphas = bg.alphas[n.block] if n.kind == "mix" and bg.alphas is not None else None
        ax.text(x, y, f"{_label(n, alphas)}\n{human(n.params)}", ha="center", va="center", fontsize=7,
                bbox=dict(boxstyle="round", fc=_COLORS[n.kind], ec="#555555"))
    for i in range(bg.num_blocks):
        ax.axvspan(1 + 4 * i - 0.45, 1 + 4 * i + 3.45, color="#eeeeee", zorder=-1)
        ax.text(1 + 4 * i + 1.5, len(names) - 0.4, f"block {i}", ha="center", fontsize=8, color="#555555")
    ax.set_xlim(-0.8, 1.8 + 4 * bg.num_blocks)
    ax.set_ylim(-0.8, len(names) - 0.1)
    ax.invert_yaxis()
    ax.axis("off")
    title = f"{human(bg.total_params)} params, {human(bg.flops_per_token)} FLOPs/token"
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path

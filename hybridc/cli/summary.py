"""The summary ``hybridc compile`` prints: components, parameters per group, stages, cost."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from ..api import Compiled
from ..graph.render import human
from ..spec.model import PARAM_GROUPS
from ..spec.vocab import vocab_report
from ..io.terminal import PipeConsole
from ..graph.plan import show_length


def summary_tables(c: Compiled) -> list[Table]:
    rs, graph, plan = c.resolved, c.graph, c.plan
    comps = Table(title=f"{rs.spec.name}: {len(rs.components)} components, {rs.num_blocks} blocks")
    for col in ("component", "family", "source", "width", "layers", "blocks", "projector", "vocab"):
        comps.add_column(col)
    for rc in rs.components:
        comp = rs.spec.component(rc.name)
        comps.add_row(rc.name, rc.family, str(comp.source) if comp.source.kind != "init" else "init (random)",
                      str(rc.hidden_size), str(rc.num_layers), ", ".join(str(r) for r in rc.ranges),
                      rs.spec.hybrid.projector(rc.name), "-" if comp.source.kind == "init" else vocab_report(rc))

    by_group = graph.params_by_group()
    groups = Table(title="parameters by group")
    groups.add_column("group")
    groups.add_column("params", justify="right")
    for stage in plan.stages:
        if stage.optimizer is not None:
            groups.add_column(stage.name, justify="center")
    for g in PARAM_GROUPS:
        marks = ["train" if g in s.train else "frozen" for s in plan.stages if s.optimizer is not None]
        groups.add_row(g, f"{by_group[g]:,}", *marks)
    groups.add_row("total", f"{graph.total_params:,}", *["" for s in plan.stages if s.optimizer is not None])

    stages = Table(title="training plan")
    for col in ("stage", "kind", "model", "data", "steps", "trainable", "frozen"):
        stages.add_column(col)
    for s in plan.stages:
        total = graph.total_params if s.graph == "continuous" else None
        frozen = (total - s.trainable_params) if (total is not None and s.trainable_params is not None) else None
        trainable = "-" if s.optimizer is None else (f"{s.trainable_params:,}" if s.trainable_params is not None
                                                      else "after search")
        stages.add_row(s.name, s.kind, s.graph, s.data or "-", show_length(s) if s.optimizer else "-", trainable,
                       f"{frozen:,}" if frozen is not None and s.optimizer else "-")
    return [comps, groups, stages] if plan.stages else [comps, groups]


MAX_LISTED = 64  # selections listed one by one in the compile summary; beyond, only the frontier


def discretizations_table(c: Compiled) -> Table | None:
    """Every discretized choice (one component per block) with its costs (FLOPs per token against the
    continuous hybrid's, parameters, parameters read per decoded token, decode state at the context length),
    marked with what a discretize stage keeps: argmax of fixed alphas, or the budget's choice. With more
    than ``MAX_LISTED`` selections, the frontier only (the cheapest selection of each evidence level)."""
    import itertools

    from ..graph.budget import MEASURES, cost_of, evidence, frontier, plan_budget, uniform_alphas
    from ..graph.selection import discretize_graph, select

    rs, graph = c.resolved, c.graph
    if rs.num_blocks == 0 or len(rs.names) < 2:
        return None
    alphas = rs.alphas
    budget = rs.spec.hybrid.budget
    planned = plan_budget(rs, alphas or uniform_alphas(rs), continuous=graph) if budget is not None else None
    if len(rs.names) ** rs.num_blocks <= MAX_LISTED:
        selections = list(itertools.product(rs.names, repeat=rs.num_blocks))
    else:
        selections = [p.selection for p in frontier(rs, alphas or uniform_alphas(rs))]
    graphs = sorted(((discretize_graph(rs, sel), sel) for sel in selections),
                    key=lambda gs: (gs[0].flops_per_token, gs[1]))
    title = "discretized choices"
    if budget is not None:
        title += f" (budget: {budget.measure} <= {budget.amount()} = {planned.limit:,.0f})"
    table = Table(title=title)
    for col, justify in (("blocks", "left"), ("FLOPs/token", "right"), ("x continuous", "right"),
                         ("params", "right"), ("read/token", "right"), (f"state at {graph.context_length}", "right"),
                         ("log P(alphas)", "right"), ("", "left")):
        table.add_column(col, justify=justify)
    top = select(alphas, rs.names) if alphas is not None else None
    for small, sel in graphs:
        notes = []
        if top is not None and sel == top:
            notes.append("argmax")
        if planned is not None:
            if planned.chosen is not None and sel == planned.chosen.selection and alphas is not None:
                notes.append("budget's choice")
            if cost_of(small, MEASURES[budget.measure]) > planned.limit:
                notes.append("over budget")
        state = small.decode_state
        table.add_row(" | ".join(sel), f"{small.flops_per_token:,}", f"{small.flops_per_token / graph.flops_per_token:.2f}",
                      f"{small.total_params:,}", f"{small.decode_params:,}", f"{state:,}" if state is not None else "?",
                      f"{evidence(alphas, rs.names, sel):.3f}" if alphas is not None else "-", ", ".join(notes))
    return table


def wide_console() -> Console:
    """A console that does not squeeze tables to 80 columns when the output is a file or pipe."""
    console = PipeConsole()
    return console if console.is_terminal else PipeConsole(width=160)


def print_summary(c: Compiled, console: Console | None = None) -> None:
    console = console or wide_console()
    for table in summary_tables(c):
        console.print(table)
    choices = discretizations_table(c)
    if choices is not None:
        console.print(choices)
    g = c.graph
    state = human(g.decode_state) if g.decode_state is not None else "unknown"
    console.print(f"shared width {g.width} · vocabulary {g.vocab_size} · mixture {g.mixture} · "
                  f"{human(g.total_params)} parameters · {human(g.flops_per_token)} FLOPs/token at context "
                  f"{g.context_length} · decoding reads {human(g.decode_params)} parameters per token and keeps "
                  f"{state} numbers per sequence at that context")


def print_results(result, console: Console | None = None) -> None:
    """The table ``hybridc train`` ends with: the hybrid against each component on the same test split."""
    console = console or wide_console()
    rows = result.comparison
    if not rows or result.test is None:
        console.print(f"run written to {result.run_dir} (no test data)")
        return
    table = Table(title=f"test split ({result.run_dir})")
    table.add_column("model")
    metrics = [k for k in ("loss", "perplexity", "accuracy", "macro_accuracy") if any(k in r for r in rows)]
    for m in metrics:
        table.add_column(m, justify="right")
    if any("note" in r for r in rows):
        table.add_column("note")
    for r in rows:
        cells = [f"{r[m]:.4f}" if isinstance(r.get(m), float) else "-" for m in metrics]
        table.add_row(r["model"], *cells, *([r.get("note", "")] if any("note" in x for x in rows) else []))
    console.print(table)
    console.print(f"final model: {result.final_dir}")

"""The Python API: ``load_spec`` and ``compile`` mirror ``hybridc validate`` and ``hybridc compile``."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from .graph.build import build_graph
from .graph.budget import check_budget
from .graph.checks import check_graph
from .graph.model import BlockGraph
from .graph.render import to_dot
from .spec.frontend import ResolvedSpec, load_spec, lock_data
from .spec.model import Spec
from .train.plan import TrainingPlan, lower_plan

if TYPE_CHECKING:
    from .nn.hybrid import HybridModel


@dataclass
class Compiled:
    """A compiled hybrid: the resolved spec, its block graph and training plan; ``model`` lowers the
    graph to a ``HybridModel`` on first use (loading the pretrained components' weights)."""

    resolved: ResolvedSpec
    graph: BlockGraph
    plan: TrainingPlan
    pretrained: bool = field(default=True)

    @property
    def spec(self) -> Spec:
        return self.resolved.spec

    @cached_property
    def model(self) -> "HybridModel":
        from .nn.hybrid import lower

        return lower(self.resolved, pretrained=self.pretrained)

    def lock_yaml(self) -> str:
        return "# spec.lock.yaml: the canonical spec and what hybridc resolved (written by hybridc)\n" + yaml.safe_dump(
            lock_data(self.resolved), sort_keys=False, width=100)

    def write(self, out_dir: str | Path) -> list[Path]:
        """Write spec.lock.yaml, plan.json and graph.dot into ``out_dir`` (created if needed)."""
        from .io import atomic_write_text

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written = [
            atomic_write_text(out / "spec.lock.yaml", self.lock_yaml()),
            atomic_write_text(out / "plan.json", self.plan.to_json()),
            atomic_write_text(out / "graph.dot", to_dot(self.graph)),
        ]
        return written


def compile_resolved(rs: ResolvedSpec, *, pretrained: bool = True) -> Compiled:
    graph = build_graph(rs)
    check_graph(graph, {c.name: c.num_layers for c in rs.components})
    check_budget(rs, graph)  # a budget no selection fits fails here, before any weight loads
    return Compiled(rs, graph, lower_plan(rs, graph), pretrained=pretrained)


def compile(spec: str | Path | ResolvedSpec, *, pretrained: bool = True) -> Compiled:  # noqa: A001 - API name
    """Compile a spec file (or a resolved spec) to its graph and plan; ``.model`` builds the module."""
    rs = spec if isinstance(spec, ResolvedSpec) else load_spec(spec)
    return compile_resolved(rs, pretrained=pretrained)

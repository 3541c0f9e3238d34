"""The Python API: ``load_spec`` and ``compile`` mirror ``hybridc validate`` and ``hybridc compile``."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from .graph.build import build_graph
from .graph.budget import check_budget
from .graph.wellformed import check_graph
from .graph.blockgraph import BlockGraph
from .graph.render import to_dot
from .spec.frontend import ResolvedSpec, load_spec, lock_data
from .spec.model import Spec
from .graph.plan import TrainingPlan, lower_plan

if TYPE_CHECKING:
    from .io.guarded_dir import GuardedDir
    from .models.hybrid import HybridModel


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
        from .models.hybrid import lower

        return lower(self.resolved, pretrained=self.pretrained)

    def lock_yaml(self) -> str:
        return "# spec.lock.yaml: the canonical spec and what hybridc resolved (written by hybridc)\n" + yaml.safe_dump(
            lock_data(self.resolved), sort_keys=False, width=100)

    def write(self, out_dir: "str | Path | GuardedDir") -> list[Path]:
        """Write spec.lock.yaml, plan.json and graph.dot into ``out_dir`` (a path, created if needed, or a run's
        open directory), never through a link (``hybridc.io.guarded_dir``: a link or a directory where one of the
        files belongs is refused)."""
        from contextlib import nullcontext

        from .io.guarded_dir import GuardedDir

        written = []
        opened = nullcontext(out_dir) if isinstance(out_dir, GuardedDir) else GuardedDir.open(out_dir, create=True)
        with opened as out:
            for name, text in (("spec.lock.yaml", self.lock_yaml()), ("plan.json", self.plan.to_json()),
                               ("graph.dot", to_dot(self.graph))):
                out.write_text(name, text)
                written.append(out.path / name)
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

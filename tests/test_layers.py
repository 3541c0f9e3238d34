"""The package's layering holds: no module imports itself through others (imports inside functions and under
``TYPE_CHECKING`` count: grimp reads every import statement), and the import-linter contracts of pyproject.toml
(``[tool.importlinter]``, also run by CI before the suite) are kept."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp
import networkx as nx

ROOT = Path(__file__).resolve().parent.parent


def import_graph() -> nx.DiGraph:
    graph = grimp.build_graph("hybridc", include_external_packages=False, cache_dir=None)
    g = nx.DiGraph()
    for module in graph.modules:
        g.add_node(module)
        for imported in graph.find_modules_directly_imported_by(module):
            g.add_edge(module, imported)
    return g


def loops(g: nx.DiGraph) -> list[list[str]]:
    """One cycle through each group of modules that import each other, shortest first."""
    found = []
    for group in nx.strongly_connected_components(g):
        if len(group) > 1:
            found.append(min(nx.simple_cycles(g.subgraph(group), length_bound=len(group)), key=len))
    return found


def test_no_module_imports_itself_through_others():
    found = loops(import_graph())
    assert not found, "import loops:\n" + "\n".join(" -> ".join([*cycle, cycle[0]]) for cycle in found)


def test_the_loop_check_finds_a_loop():
    g = import_graph()
    g.add_edge("hybridc.errors", "hybridc.spec.frontend")  # errors is imported by (almost) everything
    assert any("hybridc.errors" in cycle for cycle in loops(g))


def test_the_import_contracts_hold():
    done = subprocess.run([str(Path(sys.executable).with_name("lint-imports")), "--no-cache"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]

"""hybridc: a declarative compiler for pretrained hybrid language models.

    import hybridc
    spec = hybridc.load_spec("specs/neo-mamba.yaml")   # validated, resolved (configs only)
    c = hybridc.compile("specs/neo-mamba.yaml")        # .spec .graph .plan .model

After ``import hybridc``, transformers' ``AutoConfig``/``AutoModel``/``AutoModelForCausalLM`` (and the
classification Auto classes) load saved hybrids.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from typing import TYPE_CHECKING

__version__ = "0.1.0"
__all__ = ["load_spec", "compile", "CompileError", "RunError", "SpecError", "__version__"]


# Module paths of earlier releases -> where the module lives now (docs/architecture.md). Model directories saved
# before the rooms import ``hybridc.models.config`` and ``hybridc.models.hybrid`` from their remote code; users' code may
# import any of them. Each is the module itself, imported when first asked for.
_EARLIER = {  # earlier names: begin
    "hybridc.activity": "hybridc.io.activity",
    "hybridc.guarded_dir": "hybridc.io.guarded_dir",
    "hybridc.nn.fused_conv": "hybridc.kernels.fused_conv",
    "hybridc.nn.fused_scan": "hybridc.kernels.fused_scan",
    "hybridc.nn.kernels": "hybridc.kernels.library",
    "hybridc.nn.scan": "hybridc.kernels.scan",
    "hybridc.nn.scan_inputs": "hybridc.kernels.scan_inputs",
    "hybridc.quiet": "hybridc.components.quiet",
    "hybridc.terminal": "hybridc.io.terminal",
    "hybridc.components.build_errors": "hybridc.spec.build_errors",
    "hybridc.data.build": "hybridc.data.bundle",
    "hybridc.diffing": "hybridc.cli.git",
    "hybridc.discretize": "hybridc.models.export",
    "hybridc.generate": "hybridc.inference.generate",
    "hybridc.graph.checks": "hybridc.graph.wellformed",
    "hybridc.graph.discretize": "hybridc.graph.selection",
    "hybridc.graph.model": "hybridc.graph.blockgraph",
    "hybridc.hf_auto": "hybridc.models.auto",
    "hybridc.hf_config": "hybridc.models.config",
    "hybridc.model_card": "hybridc.models.card",
    "hybridc.nn.hybrid": "hybridc.models.hybrid",
    "hybridc.nn.vocab": "hybridc.nn.transplant",
    "hybridc.saved": "hybridc.models.load",
    "hybridc.spec.diff": "hybridc.graph.diff",
    "hybridc.summary": "hybridc.cli.summary",
    "hybridc.train.downstream": "hybridc.inference.downstream",
    "hybridc.train.evaluate": "hybridc.inference.evaluate",
    "hybridc.train.plan": "hybridc.graph.plan",
    "hybridc.components.adapters.mamba_ssm_checkpoint": "hybridc.components.mamba_ssm_checkpoint",
}  # earlier names: end


class _EarlierNames(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves an earlier dotted name of a moved module to that module (the same object, under both names)."""

    def find_spec(self, fullname, path, target=None):
        return importlib.machinery.ModuleSpec(fullname, self) if fullname in _EARLIER else None

    def create_module(self, spec):
        return importlib.import_module(_EARLIER[spec.name])

    def exec_module(self, module) -> None:
        pass  # (the module was imported under its own name)


if not any(isinstance(finder, _EarlierNames) for finder in sys.meta_path):
    sys.meta_path.insert(0, _EarlierNames())

from .errors import CompileError, RunError, SpecError  # noqa: E402
from .models.auto import register_when_transformers_loads  # noqa: E402
from .spec.frontend import load_spec  # noqa: E402

register_when_transformers_loads()  # transformers' Auto classes load saved hybrids (hybridc/models/auto.py)

if TYPE_CHECKING:
    from .api import Compiled


def compile(spec, *, pretrained: bool = True) -> "Compiled":  # noqa: A001 - mirrors `hybridc compile`
    """Compile a spec file or ``ResolvedSpec``: returns an object with ``.spec``, ``.graph``, ``.plan``
    and ``.model`` (built on first access; loads the pretrained components)."""
    from .api import compile as _compile

    return _compile(spec, pretrained=pretrained)

"""hybridc: a declarative compiler for pretrained hybrid language models.

    import hybridc
    spec = hybridc.load_spec("specs/neo-mamba.yaml")   # validated, resolved (configs only)
    c = hybridc.compile("specs/neo-mamba.yaml")        # .spec .graph .plan .model

After ``import hybridc``, transformers' ``AutoConfig``/``AutoModel``/``AutoModelForCausalLM`` (and the
classification Auto classes) load saved hybrids.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"
__all__ = ["load_spec", "compile", "CompileError", "RunError", "SpecError", "__version__"]

from .errors import CompileError, RunError, SpecError
from .hf_auto import register_when_transformers_loads
from .spec.frontend import load_spec

register_when_transformers_loads()  # transformers' Auto classes load saved hybrids (hybridc/hf_auto.py)

if TYPE_CHECKING:
    from .api import Compiled


def compile(spec, *, pretrained: bool = True) -> "Compiled":  # noqa: A001 - mirrors `hybridc compile`
    """Compile a spec file or ``ResolvedSpec``: returns an object with ``.spec``, ``.graph``, ``.plan``
    and ``.model`` (built on first access; loads the pretrained components)."""
    from .api import compile as _compile

    return _compile(spec, pretrained=pretrained)

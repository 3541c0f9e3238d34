"""The family registry: built-in families plus plugins from the ``hybridc.families`` entry points.

A plugin package declares, in its pyproject::

    [project.entry-points."hybridc.families"]
    my-family = "my_package.family:MyFamily"

where ``MyFamily`` subclasses :class:`hybridc.components.family.Family` (torch-free) and names its
torch adapter in ``Family.adapter``.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from types import MappingProxyType

from ..io.dotted import load_object
from .family import Family

ENTRY_POINT_GROUP = "hybridc.families"

_BUILTIN = (
    "hybridc.components.families.gpt_neo:GPTNeo",
    "hybridc.components.families.gpt2:GPT2",
    "hybridc.components.families.gpt_neox:GPTNeoX",
    "hybridc.components.families.llama:Llama",
    "hybridc.components.families.mamba:Mamba",
    "hybridc.components.families.mamba2:Mamba2",
)


@cache
def builtin_families() -> Mapping[str, Family]:
    """The built-in families by name (read-only; built once per process): the six with hand-written
    cost formulas, then every other entry of the architecture table."""
    from .architectures import ARCHITECTURES
    from .families.generic import GenericFamily

    found: dict[str, Family] = {}
    for path in _BUILTIN:
        family = load_object(path)()
        found[family.name] = family
    for name, architecture in ARCHITECTURES.items():
        if name not in found:
            found[name] = GenericFamily(architecture)
    return MappingProxyType(found)


@cache
def families() -> Mapping[str, Family]:
    """Every known family by name: the built-ins, then plugins from the entry points (read-only)."""
    found = dict(builtin_families())
    from importlib.metadata import entry_points  # (plugins only: the built-ins need none, nor does their lookup)

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        family = ep.load()()
        found.setdefault(family.name, family)
    return MappingProxyType(found)


def get_family(name: str) -> Family | None:
    """The family called ``name`` (``gpt-neox`` or, as a model type, ``gpt_neox``); plugins are only
    looked up for names the built-ins lack."""
    return (builtin_families().get(name) or families().get(name)
            or builtin_families().get(name.replace("_", "-")) or family_for_model_type(name))


def family_for_config(config: Mapping) -> Family | None:
    """The family of a config.json dict: by its ``model_type``, else by a class its ``architectures``
    names (a fine-tune saved under its own model type, running a known family's ``*ForCausalLM``)."""
    model_type = config.get("model_type")
    family = family_for_model_type(str(model_type)) if model_type else None
    if family is not None:
        return family
    classes = config.get("architectures")
    for name in classes if isinstance(classes, list) else []:
        for table in (builtin_families(), families()):
            for candidate in table.values():
                if isinstance(name, str) and candidate.model_class.rpartition(":")[2] == name:
                    return candidate
    return None


def family_for_model_type(model_type: str) -> Family | None:
    for table in (builtin_families(), families()):
        for family in table.values():
            if model_type in family.model_types:
                return family
    return None

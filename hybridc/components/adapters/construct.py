"""Build a family's transformers model (from scratch, or on the meta device) and wrap it in its adapter.

Importing this module imports torch and transformers; the torch-free side is ``hybridc.components.family``.
It needs no registry: the family is given (``hybridc.components.meta_cost`` measures through it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ...io.dotted import load_object
from ..family import Family
from .base import ComponentAdapter


def model_class(family: Family) -> type[nn.Module]:
    """The family's ``*ForCausalLM`` class."""
    return load_object(family.model_class)


def config_class(family: Family) -> type:
    """The family's config class: the one transformers registers for its model type (InternLM3 runs as
    ``LlamaForCausalLM`` with its own ``InternLM3Config``), else the model class's own."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    model_type = family.model_types[0]
    return CONFIG_MAPPING[model_type] if model_type in CONFIG_MAPPING else model_class(family).config_class


# Architecture.runner -> the adapter class that runs it (mamba and mamba2 run their families' own adapters)
RUNNERS = {
    "recorded": "hybridc.components.adapters.decoder:DecoderAdapter",
    "rwkv": "hybridc.components.adapters.stateful:RwkvAdapter",
    "xlstm": "hybridc.components.adapters.stateful:XlstmAdapter",
}


def load_adapter(family: Family, model: nn.Module) -> ComponentAdapter:
    """Wrap a loaded model of ``family`` in the family's adapter: the generic one for the families of the
    architecture table that run ``recorded``, else the family's own (``Family.adapter``)."""
    architecture = getattr(family, "architecture", None)
    if architecture is not None and architecture.runner in RUNNERS:
        return load_object(RUNNERS[architecture.runner])(model, architecture)
    return load_object(family.adapter)(model)


def build_model(family: Family, config_dict: Mapping[str, Any], *, seed: int) -> nn.Module:
    """A randomly initialised model of ``family`` from a config.json dict (e.g. ``Family.init_config``).

    The initialisation draws from torch's global RNG inside ``fork_rng`` seeded with ``seed``: the
    same (config, seed) gives the same weights, and the caller's RNG state is left untouched.
    Returned in training mode, float32 (torch's default dtype), like ``Model(config)``.
    """
    cls = model_class(family)
    config = config_class(family).from_dict(dict(config_dict))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = cls(config)
    return model


def build_on_meta(family: Family, config_dict: Mapping[str, Any]) -> nn.Module:
    """The family's model with ``config_dict`` on the meta device: shapes only, no memory (for counting)."""
    cls = model_class(family)
    with torch.device("meta"):
        config = config_class(family).from_dict(dict(config_dict))
        return cls(config)

"""Build or load a family's transformers model and wrap it in the family's adapter.

``build_model`` (from-scratch components) and ``load_pretrained`` (checkpoints) return the family's
own ``*ForCausalLM`` (``Family.model_class``); ``load_adapter`` wraps it in ``Family.adapter``.
Importing this package imports torch and transformers; the torch-free side is ``hybridc.components.family``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import mamba_ssm
from ...quiet import install as _quiet_install
from ...quiet import transformers_bars_off
from ..family import Family
from ..registry import family_for_config, load_object
from .base import ComponentAdapter, Segment

_quiet_install()  # transformers' advice to install mamba-ssm / causal-conv1d, where hybridc runs Mamba (hybridc.quiet)

__all__ = [
    "ComponentAdapter",
    "Segment",
    "build_model",
    "build_on_meta",
    "config_class",
    "load_adapter",
    "load_pretrained",
    "model_class",
]


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


def load_pretrained(family: Family, path_or_id: str | Path, *, revision: str | None = None,
                    trust_remote_code: bool = False) -> nn.Module:
    """``from_pretrained`` for a local save_pretrained dir or a Hub id: safetensors only, no remote
    code, float32. The mode is what transformers returns (eval). Raises ValueError, before any
    weight is read, when the checkpoint's ``model_type`` is not one of the family's. A checkpoint in
    mamba-ssm's layout (state-spaces' ``mamba-*``, ``mamba2-*``) loads as transformers' Mamba / Mamba2
    (``mamba_ssm_checkpoint.load_mamba_ssm``)."""
    from .. import hub

    cls = model_class(family)
    config_cls = config_class(family)
    # a Hub id while the Hub does not answer: the cache only, failing at once instead of after retries
    cache_only = {"local_files_only": True} if hub.local_only(path_or_id) else {}
    with transformers_bars_off():  # (hybridc says what it loads)
        try:
            config_dict, _ = config_cls.get_config_dict(str(path_or_id), revision=revision, **cache_only)
            if mamba_ssm.recognizes(config_dict):  # state-spaces' mamba-* / mamba2-*: mamba-ssm's own layout
                from .mamba_ssm_checkpoint import load_mamba_ssm

                return load_mamba_ssm(family, path_or_id, config_dict, revision=revision)
            model_type = config_dict.get("model_type")
            if family_for_config(config_dict) is not family:
                raise ValueError(f"{path_or_id}: model_type {model_type!r} is not a {family.name} model")
            config = config_cls.from_pretrained(str(path_or_id), revision=revision, **cache_only)
            return cls.from_pretrained(
                str(path_or_id),
                config=config,
                revision=revision,
                use_safetensors=True,
                trust_remote_code=trust_remote_code,  # off unless the spec enables it (and the CLI warns)
                dtype=torch.float32,
                **cache_only,
            )
        except OSError as err:
            down = hub.unreachable() if cache_only else None
            if down is None:
                raise
            raise ValueError(f"{down}: {hub.hint('the model')}") from err

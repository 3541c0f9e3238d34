"""A family's pretrained checkpoint loaded as its transformers model: a local ``save_pretrained`` directory or a
Hub id, or a checkpoint in mamba-ssm's layout (``mamba_ssm_checkpoint``). The checkpoint's config must be the
family's (the registry says which family a config is)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from . import mamba_ssm
from .adapters.construct import config_class, model_class
from .family import Family
from .quiet import transformers_bars_off
from .registry import family_for_config


def load_pretrained(family: Family, path_or_id: str | Path, *, revision: str | None = None,
                    trust_remote_code: bool = False) -> nn.Module:
    """``from_pretrained`` for a local save_pretrained dir or a Hub id: safetensors only, no remote
    code, float32. The mode is what transformers returns (eval). Raises ValueError, before any
    weight is read, when the checkpoint's ``model_type`` is not one of the family's. A checkpoint in
    mamba-ssm's layout (state-spaces' ``mamba-*``, ``mamba2-*``) loads as transformers' Mamba / Mamba2
    (``mamba_ssm_checkpoint.load_mamba_ssm``)."""
    from . import hub

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

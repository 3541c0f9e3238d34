"""The hybrid's parameter names: the group each belongs to, and the names of earlier releases, renamed on load
(``from_pretrained``, checkpoints)."""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

# Parameter names of earlier releases (regex -> replacement): the blocks' projectors were ``in_proj`` and
# ``out_proj`` (renamed: Mamba's layers have modules of those names, which PEFT targets by name).
LEGACY_KEYS = {r"^blocks\.(\d+)\.in_proj\.": r"blocks.\1.projector_in.",
               r"^blocks\.(\d+)\.out_proj\.": r"blocks.\1.projector_out."}


def upgrade_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict with the names of earlier releases renamed (``LEGACY_KEYS``)."""
    out = {}
    for key, value in state.items():
        for pattern, replacement in LEGACY_KEYS.items():
            key = re.sub(pattern, replacement, key)
        out[key] = value
    return out


def group_of(param_name: str) -> str:
    """The parameter group of a HybridModel parameter name."""
    if param_name.startswith("embed."):
        return "embeddings"
    if param_name.startswith("head."):
        return "head"
    parts = param_name.split(".")
    if parts[0] == "blocks":
        return {"segments": "components", "projector_in": "projectors", "projector_out": "projectors",
                "mix": "alphas"}[parts[2]]
    raise ValueError(f"parameter {param_name} belongs to no group")

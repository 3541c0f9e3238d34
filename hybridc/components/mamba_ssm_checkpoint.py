"""A checkpoint in mamba-ssm's layout loaded as transformers' ``MambaForCausalLM`` / ``Mamba2ForCausalLM``.

The config is translated by ``hybridc.components.mamba_ssm`` (torch-free, also what ``validate`` checks);
here the weights are read -- from ``model.safetensors`` when there is one, else ``pytorch_model.bin``
through ``torch.load(weights_only=True)``, which unpickles tensors and plain containers only, never code --
renamed (``backbone.embedding.`` -> ``backbone.embeddings.``, the one name the layouts disagree on) and
checked against the model built on the meta device before anything is allocated: every tensor of the
model present, none unexpected, each in the model's shape, a tied head equal to the embedding it is tied
to. The model is then the family's own class holding exactly those tensors, in float32, in eval mode (as
``from_pretrained`` returns it).
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import hub, mamba_ssm
from ..errors import first_line
from .family import Family
from .registry import family_for_config
from .adapters.construct import build_on_meta

SHOWN = 3  # tensor names shown in a refusal (then the count)


class CheckpointError(ValueError):
    """A mamba-ssm checkpoint that cannot be loaded, and what to do about it."""

    def __init__(self, message: str, hint: str):
        super().__init__(message)
        self.hint = hint


CONVERT = ("use the checkpoint as state-spaces published it (config.json and pytorch_model.bin), or a "
           "transformers-format copy (save_pretrained)")


def weights_file(location: str | Path, revision: str | None = None) -> Path:
    """The checkpoint's weights file: in a local directory, or fetched from the Hub (its cache when the Hub does
    not answer), ``model.safetensors`` first, else ``pytorch_model.bin``."""
    local = Path(location)
    if local.is_dir():
        for name in mamba_ssm.WEIGHT_FILES:
            if (local / name).is_file():
                return local / name
        raise CheckpointError(f"{location} holds no weights ({' or '.join(mamba_ssm.WEIGHT_FILES)})", CONVERT)
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    for name in mamba_ssm.WEIGHT_FILES:
        try:
            return hub.download(str(location), name, revision)
        except (EntryNotFoundError, LocalEntryNotFoundError):
            continue  # (not in the repository, or not in the cache offline): the next name
        except hub.HubUnreachable as err:
            if name == mamba_ssm.WEIGHT_FILES[-1]:
                raise CheckpointError(str(err), hub.hint("the model")) from None
    raise CheckpointError(f"hf:{location} has no weights file ({' or '.join(mamba_ssm.WEIGHT_FILES)})"
                          + (" in the cache (HF_HUB_OFFLINE is set)" if hub.offline() else ""),
                          hub.hint("the model") if hub.offline() else CONVERT)


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """{name: tensor} of a weights file: safetensors, or a PyTorch file read with ``weights_only`` (a file that
    holds anything but tensors and plain containers, code included, is refused, never unpickled)."""
    if path.name.endswith(".safetensors"):
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except Exception as err:  # a truncated or foreign file
            raise CheckpointError(f"{path.name} is not a complete safetensors file ({type(err).__name__}: "
                                  f"{first_line(err)})", CONVERT) from None
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:
            raise CheckpointError(f"{path.name} holds more than weights: loading it would unpickle "
                                  f"{_unpickled(err)}, which hybridc never does (code could run)",
                                  "use a copy of the checkpoint that holds only its tensors (state-spaces' own "
                                  "pytorch_model.bin does), or convert it to model.safetensors where you trust it"
                                  ) from None
        except Exception as err:  # truncated, not a PyTorch file at all, ...
            raise CheckpointError(f"{path.name} cannot be read as PyTorch weights ({type(err).__name__}: "
                                  f"{first_line(err)})", CONVERT) from None
    if not isinstance(state, Mapping) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                 for k, v in state.items()):
        raise CheckpointError(f"{path.name} does not hold a mapping of tensor names to tensors (a state dict)",
                              CONVERT)
    return dict(state)


def _unpickled(err: Exception) -> str:
    """What ``weights_only`` refused to unpickle, from torch's message (``the global posix.system``)."""
    import re

    found = re.search(r"GLOBAL ([\w.]+)", str(err))
    return f"the global {found.group(1)}" if found else "an object that is not a tensor"


def renamed(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """mamba-ssm's tensor names as transformers' (``mamba_ssm.WEIGHT_RENAMES``)."""
    out = {}
    for key, value in state.items():
        for old, new in mamba_ssm.WEIGHT_RENAMES:
            if key.startswith(old):
                key = new + key[len(old):]
        out[key] = value
    return out


def _few(names) -> str:
    names = sorted(names)
    return ", ".join(names[:SHOWN]) + (f", ... ({len(names)} in all)" if len(names) > SHOWN else "")


def _check_tensors(model: nn.Module, state: dict[str, torch.Tensor], tied: bool, path: Path) -> None:
    """``state`` holds exactly ``model``'s tensors in its shapes (a tied head may be left out, and must equal
    the embedding when it is there); else a ``CheckpointError`` naming them."""
    shapes = {name: tuple(t.shape) for name, t in model.state_dict(keep_vars=True).items()}
    head, embedding = "lm_head.weight", "backbone.embeddings.weight"
    if tied and head in state and embedding in state:
        if state[head].shape != state[embedding].shape or not torch.equal(state[head], state[embedding]):
            raise CheckpointError(f"{path.name}: lm_head.weight differs from the embedding, but config.json says "
                                  "tie_embeddings: true (one matrix for both)",
                                  "set tie_embeddings: false in config.json if the checkpoint has its own head")
        del state[head]
    wanted = {k: s for k, s in shapes.items() if not (tied and k == head)}
    missing = [k for k in wanted if k not in state]
    unexpected = [k for k in state if k not in wanted]
    mismatched = [f"{k} {list(state[k].shape)} (the config's is {list(wanted[k])})" for k in wanted
                  if k in state and tuple(state[k].shape) != wanted[k]]
    parts = [f"{label} {_few(names)}" for label, names in (("missing", missing), ("unexpected", unexpected),
                                                           ("of another shape", mismatched)) if names]
    if parts:
        raise CheckpointError(f"the weights in {path.name} do not match the model its config.json describes: "
                              + "; ".join(parts), "config.json and the weights must come from the same checkpoint")


def load_mamba_ssm(family: Family, location: str | Path, config: Mapping[str, Any], *,
                   revision: str | None = None) -> nn.Module:
    """The transformers model of the mamba-ssm checkpoint at ``location`` (a local directory or a Hub id) whose
    config.json is ``config``. ``CheckpointError`` for a config that does not translate or is not ``family``'s,
    or weights that are unreadable or not the config's."""
    translated, problems = mamba_ssm.to_transformers(config)
    if translated is None:
        raise CheckpointError(f"its config.json (mamba-ssm's layout): {problems[0].message}",
                              problems[0].hint or "fix its config.json")
    if family_for_config(translated) is not family:
        raise CheckpointError(f"{location}: its mamba-ssm config.json describes a {translated['model_type']} model, "
                              f"not a {family.name} one", "the checkpoint changed since the spec was validated: "
                              "validate it again")
    path = weights_file(location, revision)
    state = renamed(read_weights(path))
    model = build_on_meta(family, family.full_config(translated))
    tied = bool(translated["tie_word_embeddings"])
    _check_tensors(model, state, tied, path)
    state = {k: v.to(torch.float32) for k, v in state.items()}
    if tied:
        state["lm_head.weight"] = state["backbone.embeddings.weight"]
    model.load_state_dict(state, strict=True, assign=True)
    if tied:  # (assign gives the head a parameter of its own: one matrix again, as the config says)
        model.get_output_embeddings().weight = model.get_input_embeddings().weight
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if tensor.is_meta:  # (no family has buffers a checkpoint lacks today; a new one must not pass unnoticed)
            raise CheckpointError(f"{name} of the {family.name} model is not in the checkpoint", CONVERT)
    return model.eval()

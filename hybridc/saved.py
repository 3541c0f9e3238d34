"""Model directories as hybridc reads them: a saved hybrid, a run (its ``final/``), or a plain component
exported by ``hybridc discretize`` (with ``hybridc.json``: the hybrid it came from). Each holds its
tokenizer; nothing outside the directory is read."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from .data.tokenizer import Tokenizer
from .errors import RunError
from .spec.frontend import ResolvedSpec
from .spec.model import Task


def model_directory(path: Path) -> Path:
    """A run directory means its final/; anything else must hold a saved hybrid."""
    path = Path(path)
    if (path / "final").is_dir():
        path = path / "final"
    if not (path / "config.json").is_file():
        raise RunError(f"{path} holds no saved model (config.json missing)",
                       "pass a run directory, its final/, or a directory written by hybridc discretize")
    weights = [p for p in ("model.safetensors", "model.safetensors.index.json") if (path / p).is_file()]
    if not weights:
        pickled = [p.name for p in path.glob("*.bin")] + [p.name for p in path.glob("*.pt")]
        raise RunError(f"{path} holds no model.safetensors" + (f" (only {', '.join(sorted(pickled))})" if pickled else ""),
                       "hybridc loads safetensors weights only (pickled .bin files can run code); save the model "
                       "with save_pretrained, which writes safetensors")
    if (path / weights[0]).stat().st_size == 0:
        raise RunError(f"{path / weights[0]} is empty", "the model was not saved completely: save it again")
    return path


def _from_pretrained(load, directory: Path, **kwargs):
    """``load(directory, use_safetensors=True, ...)``, with unreadable weights reported as a ``RunError``
    (a ``CompileError`` about the model itself passes through)."""
    from .errors import CompileError

    try:
        return load(directory, use_safetensors=True, **kwargs)
    except CompileError:
        raise
    except Exception as err:  # a truncated or foreign file: safetensors, OSError, shape mismatches
        first = str(err).strip().splitlines()[0] if str(err).strip() else "no details"
        raise RunError(f"cannot load the model in {directory}: {type(err).__name__}: {first}",
                       "the directory needs config.json and model.safetensors as save_pretrained writes them") from None


EXPORT_RECORD = "hybridc.json"  # beside a plain export: the hybrid it came from (its lock and selection)


@dataclass(frozen=True)
class SavedModel:
    """A model directory loaded for use: a hybrid, or a plain component exported by ``hybridc discretize``."""

    directory: Path
    model: torch.nn.Module  # HybridModel, or the family's own *ForCausalLM
    resolved: ResolvedSpec | None  # the hybrid's spec (a plain export's comes from its hybridc.json)
    tokenizer: Tokenizer | None
    tokenizer_problem: str | None = None

    @property
    def task(self) -> Task:
        return self.resolved.spec.task if self.resolved is not None else Task("causal-lm")

    @property
    def seed(self) -> int:
        return self.resolved.spec.train.seed if self.resolved is not None else 0

    def need_tokenizer(self) -> Tokenizer:
        if self.tokenizer is None:
            raise RunError(f"{self.directory} has no tokenizer: {self.tokenizer_problem or 'none was saved'}",
                           "give the spec a tokenizer (bytes, a tokenizer directory, hf:<id> or a component with "
                           "tokenizer files) and save the model again")
        return self.tokenizer


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def load_hybrid(path: Path, device: str = "cpu"):
    """The hybrid saved in ``path`` (a run directory means its final/), in eval mode."""
    from .nn.hybrid import HybridModel

    _quiet_transformers()
    directory = model_directory(path)
    model_type = json.loads((directory / "config.json").read_text()).get("model_type")
    if model_type != "hybridc":
        raise RunError(f"{directory} holds a plain {model_type} model, not a hybrid",
                       "load it with transformers' AutoModelForCausalLM; this command needs a hybrid")
    return _from_pretrained(HybridModel.from_pretrained, directory).to(torch.device(device)).eval()


def load_saved(path: Path, device: str = "cpu") -> SavedModel:
    """A hybrid, or a plain model exported by ``hybridc discretize`` (any causal LM transformers loads),
    with the tokenizer saved in its directory."""
    from .data.tokenizer import saved_tokenizer
    from .spec.frontend import resolve_from_lock

    directory = model_directory(path)
    if json.loads((directory / "config.json").read_text()).get("model_type") == "hybridc":
        model = load_hybrid(directory, device)
        return SavedModel(directory, model, model.resolved_spec, model.get_tokenizer(), model.tokenizer_problem)
    from transformers import AutoModelForCausalLM

    _quiet_transformers()
    record = directory / EXPORT_RECORD
    resolved = resolve_from_lock(json.loads(record.read_text())["lock"]) if record.is_file() else None
    model = _from_pretrained(AutoModelForCausalLM.from_pretrained, directory, dtype=torch.float32)
    field = resolved.spec.tokenizer if resolved is not None else str(directory)
    tokenizer = saved_tokenizer(field, directory)
    problem = None if tokenizer is not None else f"{directory} holds no tokenizer files"
    return SavedModel(directory, model.to(torch.device(device)).eval(), resolved, tokenizer, problem)

"""Model directories loaded for use: a saved hybrid, a run (its ``final/``), or a plain component exported by
``hybridc discretize`` (with ``hybridc.json``: the hybrid it came from), each with its tokenizer. The format
below them (what a directory must hold, checked before anything loads) is ``hybridc.models.format``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import RunError
from .format import (from_pretrained_checked, build_on_meta, check_generation_config, check_hybrid_config,
                           check_loading_info, check_parameter_count, load_config, model_directory, read_config,
                           read_export_record, refuse_plain)
from ..spec.frontend import ResolvedSpec
from ..spec.model import Task

if TYPE_CHECKING:
    import torch

    from ..data.tokenizer import Tokenizer


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
        """The seed its data was built with (``train.data_seed`` when the spec gave one)."""
        return self.resolved.spec.train.data_seed_or_seed if self.resolved is not None else 0

    def need_tokenizer(self) -> Tokenizer:
        if self.tokenizer is None:
            raise no_tokenizer(self.directory, self.tokenizer_problem)
        return self.tokenizer


def no_tokenizer(directory: Path, problem: str | None) -> RunError:
    return RunError(f"{directory} has no tokenizer: {problem or 'none was saved'}",
                    "give the spec a tokenizer (bytes, a tokenizer directory, hf:<id> or a component with "
                    "tokenizer files) and save the model again")


def check_before_loading(path: Path, *, generates: bool = False, tokenizer: bool = False) -> Path:
    """The model directory of ``path`` (``model_directory``), checked from its JSON files and file names alone
    (no torch, no weights) for what a command needs before it loads the model: a causal LM (``generates``),
    tokenizer files (``tokenizer``: what ``need_tokenizer`` would refuse after loading). A ``RunError``
    otherwise, the one the command would give after loading."""
    from ..spec.checks import TOKENIZER_FILES
    from ..spec.model import BYTES_TOKENIZER

    directory = model_directory(path)
    config = read_config(directory)
    if config.get("model_type") == "hybridc":
        resolved = check_hybrid_config(config, directory / "config.json")
    else:
        resolved = read_export_record(directory)
    kind = resolved.spec.task if resolved is not None else Task("causal-lm")
    if generates and kind.kind != "causal-lm":
        raise RunError(f"a {kind} model does not generate text", "generation needs task: causal-lm")
    field = resolved.spec.tokenizer if resolved is not None else None
    if tokenizer and field != BYTES_TOKENIZER and not any((directory / n).is_file() for n in TOKENIZER_FILES):
        raise no_tokenizer(directory, f"{directory} holds no tokenizer files")
    return directory


def load_hybrid(path: Path, device: str = "cpu", config: Mapping[str, Any] | None = None):
    """The hybrid saved in ``path`` (a run directory means its final/), in eval mode. ``config``: its
    ``config.json`` as ``read_config`` returned it, when the caller has read it (it is not read again here)."""
    import torch

    from .hybrid import HybridModel

    directory = model_directory(path)
    refuse_plain(directory, read_config(directory) if config is None else config)
    return from_pretrained_checked(HybridModel.from_pretrained, directory).to(torch.device(device)).eval()


def load_plain(directory: Path):
    """The plain transformers model of an export (``AutoModelForCausalLM``), checked before loading (config
    sizes, parameters against the weights files) and after (transformers' loading report)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = load_config(AutoConfig.from_pretrained, directory)
    meta = build_on_meta(lambda: AutoModelForCausalLM.from_config(config), directory)
    check_parameter_count(meta, directory)
    model, info = from_pretrained_checked(AutoModelForCausalLM.from_pretrained, directory, dtype=torch.float32,
                                   output_loading_info=True)
    check_loading_info(info, directory)
    return model


def load_saved(path: Path, device: str = "cpu") -> SavedModel:
    """A hybrid, or a plain model exported by ``hybridc discretize`` (any causal LM transformers loads),
    with the tokenizer saved in its directory. Every JSON file read is checked first (``read_json``)."""
    import torch

    from ..data.tokenizer import saved_tokenizer
    from ..components.quiet import install

    install()  # (a plain export of Mamba decodes with transformers' kernels too: hybridc.components.quiet)

    directory = model_directory(path)
    config = read_config(directory)
    check_generation_config(directory)
    if config.get("model_type") == "hybridc":
        model = load_hybrid(directory, device, config)
        return SavedModel(directory, model, model.resolved_spec, model.get_tokenizer(), model.tokenizer_problem)
    resolved = read_export_record(directory)
    model = load_plain(directory)
    field = resolved.spec.tokenizer if resolved is not None else str(directory)
    tokenizer = saved_tokenizer(field, directory)
    problem = None if tokenizer is not None else f"{directory} holds no tokenizer files"
    return SavedModel(directory, model.to(torch.device(device)).eval(), resolved, tokenizer, problem)

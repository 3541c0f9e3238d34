"""``hybridc generate``: load a saved hybrid (or a run's ``final/``) and stream generated text."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
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
    return path


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
    return HybridModel.from_pretrained(directory).to(torch.device(device)).eval()


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
    try:
        model = AutoModelForCausalLM.from_pretrained(directory, use_safetensors=True, dtype=torch.float32)
    except Exception as err:
        raise RunError(f"cannot load the model in {directory}: {type(err).__name__}: {str(err).splitlines()[0]}",
                       "the directory needs config.json and model.safetensors (save_pretrained layout)") from None
    field = resolved.spec.tokenizer if resolved is not None else str(directory)
    tokenizer = saved_tokenizer(field, directory)
    problem = None if tokenizer is not None else f"{directory} holds no tokenizer files"
    return SavedModel(directory, model.to(torch.device(device)).eval(), resolved, tokenizer, problem)


class TextStreamer:
    """A ``generate`` streamer printing decoded text as tokens arrive (prompt excluded)."""

    def __init__(self, decode: Callable[[list[int]], str], write: Callable[[str], None]):
        self.decode, self.write = decode, write
        self.skip = 1  # generate first puts the prompt
        self.tokens: list[int] = []
        self.shown = ""

    def put(self, value: torch.Tensor) -> None:
        if self.skip:
            self.skip -= 1
            return
        self.tokens += value.reshape(-1).tolist()
        text = self.decode(self.tokens)
        if text.startswith(self.shown):
            self.write(text[len(self.shown):])
            self.shown = text

    def end(self) -> None:
        text = self.decode(self.tokens)
        if text != self.shown and text.startswith(self.shown):
            self.write(text[len(self.shown):])
        self.write("\n")


def generate_text(path: Path, prompt: str, *, max_new_tokens: int = 50, temperature: float = 0.0, top_k: int = 0,
                  num_beams: int = 1, seed: int = 0, device: str = "cpu", stream: bool = True,
                  write: Callable[[str], None] = lambda t: (sys.stdout.write(t), sys.stdout.flush())) -> str:
    saved = load_saved(path, device)
    if saved.task.kind != "causal-lm":
        raise RunError(f"a {saved.task} model does not generate text", "generation needs task: causal-lm")
    model, tokenizer = saved.model, saved.need_tokenizer()
    ids = tokenizer.encode(prompt)
    if not ids:
        raise RunError("the prompt is empty after tokenization", "give a non-empty prompt")
    input_ids = torch.tensor([ids], device=model.device)
    torch.manual_seed(seed)
    sampling = temperature > 0
    streamer = TextStreamer(tokenizer.decode, write) if stream and num_beams == 1 else None
    output = model.generate(
        input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=max_new_tokens, do_sample=sampling,
        temperature=temperature if sampling else None, top_k=top_k if sampling and top_k else None,
        num_beams=num_beams, pad_token_id=tokenizer.pad_id, eos_token_id=tokenizer.eos_id, streamer=streamer)
    text = tokenizer.decode(output[0, len(ids):].tolist())
    if streamer is None and stream:
        write(text + "\n")
    return text

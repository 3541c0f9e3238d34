"""``hybridc generate``: load a saved hybrid (or a run's ``final/``) and stream generated text."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from .errors import RunError


def model_directory(path: Path) -> Path:
    """A run directory means its final/; anything else must hold a saved hybrid."""
    path = Path(path)
    if (path / "final").is_dir():
        path = path / "final"
    if not (path / "config.json").is_file():
        raise RunError(f"{path} holds no saved model (config.json missing)",
                       "pass a run directory, its final/, or a directory written by hybridc discretize")
    return path


def load_hybrid(path: Path, device: str = "cpu"):
    from transformers.utils import logging as hf_logging

    from .nn.hybrid import HybridModel

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    directory = model_directory(path)
    model_type = json.loads((directory / "config.json").read_text()).get("model_type")
    if model_type != "hybridc":
        raise RunError(f"{directory} holds a plain {model_type} model, not a hybrid",
                       "load it with transformers' AutoModelForCausalLM; hybridc generate runs hybrids")
    return HybridModel.from_pretrained(directory).to(torch.device(device)).eval()


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
    from .data import load_tokenizer

    model = load_hybrid(path, device)
    tokenizer = load_tokenizer(model.resolved_spec)
    if tokenizer is None:
        raise RunError("this hybrid's tokenizer is a from-scratch component's, which has none",
                       "give the spec a tokenizer (bytes, a tokenizer directory or hf:<id>) to generate text")
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

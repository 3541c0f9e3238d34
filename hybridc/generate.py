"""``hybridc generate``: load a saved hybrid, a run's ``final/`` or a plain export, and stream generated text."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import torch

from .errors import RunError
from .saved import load_saved


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

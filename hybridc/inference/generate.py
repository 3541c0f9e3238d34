"""``hybridc generate``: load a saved hybrid, a run's ``final/`` or a plain export, and stream generated text."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import RunError
from ..models.load import SavedModel, check_before_loading, load_saved
from ..models.format import EXPORT_RECORD

if TYPE_CHECKING:  # (torch is imported when the model loads: the command says what it does first)
    import torch

    from ..io.activity import Activity


class LimitError(RunError):
    """A request past what the model takes (its positions, its vocabulary), refused before the model runs.
    A usage error, like an option out of range: exit 2."""

    exit_code = 2


def position_limits(saved: SavedModel) -> list[tuple[int, str]]:
    """(positions, what has them) for every part of the model that runs and has a position table, shortest
    first: a hybrid's running components (a branch of weight 0 in every block never runs), or a plain
    export's own config. [] when nothing limits the length (recurrent components only)."""
    import torch

    from ..models.hybrid import HybridModel

    model = saved.model
    if isinstance(model, HybridModel):
        with torch.no_grad():
            running = model._running(model._mixtures())
        limits = [(model.resolved_spec.component(m).shape.max_length, f"component '{m}'") for m in running]
    else:
        limits = [(_plain_shape(model)[0], _plain_name(saved))]
    return sorted((int(limit), name) for limit, name in limits if limit is not None)


def vocabulary_size(saved: SavedModel) -> int | None:
    """The token ids the model takes (0 .. size-1): the hybrid's vocabulary, or a plain export's."""
    from ..models.hybrid import HybridModel

    model = saved.model
    if isinstance(model, HybridModel):
        return int(model.resolved_spec.vocab_size)
    return _plain_shape(model)[1]


def _plain_shape(model) -> tuple[int | None, int | None]:
    """(positions, vocabulary) of a plain transformers model, from its config (its family's keys when
    hybridc knows the family)."""
    from ..components.registry import family_for_config

    config = model.config.to_dict()
    family = family_for_config(config)
    if family is not None:
        try:
            shape = family.shape(config)
            return shape.max_length, shape.vocab_size
        except (KeyError, TypeError, ValueError):
            pass
    positions = config.get("max_position_embeddings", config.get("n_positions"))
    vocab = config.get("vocab_size")
    return (positions if isinstance(positions, int) else None), (vocab if isinstance(vocab, int) else None)


def _plain_name(saved: SavedModel) -> str:
    import json

    try:
        name = json.loads((saved.directory / EXPORT_RECORD).read_text())["component"]
        return f"component '{name}'"
    except (OSError, ValueError, KeyError, TypeError):
        return f"the plain {getattr(saved.model.config, 'model_type', 'model')} model"


def check_prompt(saved: SavedModel, ids: list[int], max_new_tokens: int) -> None:
    """``LimitError`` when the prompt's tokens and ``max_new_tokens`` do not fit the model: more positions
    than a component has, or a token id outside its vocabulary (the model would fail midway otherwise)."""
    vocab = vocabulary_size(saved)
    if vocab is not None and ids and max(ids) >= vocab:
        raise LimitError(f"the prompt has token id {max(ids)}, outside the model's vocabulary of {vocab} tokens",
                         "the model was saved with a tokenizer larger than its vocabulary; save it again with the "
                         "tokenizer it was trained with")
    for limit, name in position_limits(saved)[:1]:  # the shortest limit is the one that binds
        if len(ids) > limit:
            raise LimitError(f"the prompt ({len(ids)} tokens) is longer than the model's {limit} positions ({name})",
                             f"shorten the prompt to at most {limit - 1} tokens, leaving room for --max-new-tokens")
        if len(ids) + max_new_tokens > limit:
            room = limit - len(ids)
            raise LimitError(f"prompt ({len(ids)} tokens) + --max-new-tokens {max_new_tokens} exceeds the model's "
                             f"{limit} positions ({name})",
                             (f"lower --max-new-tokens to at most {room}" if room >= 1 else "lower --max-new-tokens")
                             + " or shorten the prompt")


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
                  num_beams: int = 1, seed: int = 0, device: str = "cpu", decode: str = "fast", stream: bool = True,
                  write: Callable[[str], None] = lambda t: (sys.stdout.write(t), sys.stdout.flush()),
                  activity: Activity | None = None) -> str:
    """Generate from the model in ``path`` (streamed through ``write``); ``activity`` shows the loading. What
    needs no weights (a causal LM, its tokenizer files) is checked before the model loads. ``decode``: a hybrid's
    decode path (``HybridModel.set_decode_path``; a plain export decodes as its family does)."""
    from contextlib import nullcontext

    directory = check_before_loading(path, generates=True, tokenizer=True)
    with activity.step(f"loading the model in {directory}") if activity is not None else nullcontext():
        import torch

        saved = load_saved(directory, device)
    if saved.task.kind != "causal-lm":
        raise RunError(f"a {saved.task} model does not generate text", "generation needs task: causal-lm")
    model, tokenizer = saved.model, saved.need_tokenizer()
    if hasattr(model, "set_decode_path"):
        model.set_decode_path(decode)
    ids = tokenizer.encode(prompt)
    if not ids:
        raise RunError("the prompt is empty after tokenization", "give a non-empty prompt")
    check_prompt(saved, ids, max_new_tokens)
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

"""The config of a saved hybrid (``model_type: hybridc``). Imports only transformers' config module (no
torch of its own), so transformers' ``AutoConfig`` can learn it while transformers is still loading."""

from __future__ import annotations

from typing import Any

from transformers.configuration_utils import PreTrainedConfig

from ..errors import CompileError
from ..spec.frontend import ResolvedSpec, resolve_from_lock


class HybridConfig(PreTrainedConfig):
    """Config of a hybrid: the lock (canonical spec + resolved components) and, once discretized,
    the component each block selected.

    What clients of transformers models read is derived from the lock (unless given): ``vocab_size`` (the
    logits' size), ``hidden_size`` (the shared width), ``max_position_embeddings`` (the shortest context of a
    component that runs; absent when none has a limit: recurrent components), ``num_hidden_layers`` (the
    blocks). The special-token ids are the tokenizer's, set when the model is saved."""

    model_type = "hybridc"

    def __init__(self, lock: dict[str, Any] | None = None, selection: list[str] | None = None, **kwargs):
        self.lock = lock
        self.selection = list(selection) if selection is not None else None
        kwargs.setdefault("tie_word_embeddings", True)  # ties are found per model (shared parameters)
        for key, value in (facts_of_lock(lock, self.selection) if lock is not None else {}).items():
            kwargs.setdefault(key, value)
        super().__init__(**kwargs)

    def save_pretrained(self, save_directory, push_to_hub: bool = False, **kwargs) -> None:
        """``PreTrainedConfig.save_pretrained`` with the ``auto_map`` and the remote-code modules hybridc writes
        (``hybridc.models.remote_code.REMOTE_CODE``), whichever class this config is: hybridc's own, or the subclass in a
        model directory's ``configuration_hybridc.py`` (or a class an earlier release's directory re-exported),
        which transformers marks as remote code after a ``trust_remote_code=True`` load. Its own copy of the
        class's module (``custom_object_save``) is not made: the modules written are the same for every hybrid."""
        from .remote_code import AUTO_MAP, write_remote_code

        self.auto_map = dict(AUTO_MAP)
        self._auto_class = None  # (an instance attribute, never serialized) transformers reads it to copy the module
        try:
            super().save_pretrained(save_directory, push_to_hub=push_to_hub, **kwargs)
        finally:
            del self._auto_class
        write_remote_code(save_directory)

    def resolved(self) -> ResolvedSpec:
        if self.lock is None:
            raise CompileError("this HybridConfig holds no spec")
        return resolve_from_lock(self.lock)


def facts_of_lock(lock: dict[str, Any], selection: list[str] | None) -> dict[str, Any]:
    """The config values clients read, from a lock (see ``HybridConfig``); {} for a lock too old to say."""
    from ..components.registry import get_family

    try:
        resolved = lock["resolved"]
        components = {entry["name"]: entry for entry in resolved["components"]}
        running = set(selection) if selection is not None else set(components)
        limits = []
        for name in running:
            family = get_family(components[name]["family"])
            if family is not None:
                limit = family.shape(components[name]["config"]).max_length
                if limit is not None:
                    limits.append(limit)
        facts = {"vocab_size": int(resolved["vocab_size"]), "hidden_size": int(resolved["width"]),
                 "num_hidden_layers": len(next(iter(components.values()))["blocks"])}
    except (KeyError, TypeError, ValueError, StopIteration, AttributeError):
        return {}
    if limits:
        facts["max_position_embeddings"] = min(limits)
    return facts

"""The config of a saved hybrid (``model_type: hybridc``). Imports only transformers' config module (no
torch of its own), so transformers' ``AutoConfig`` can learn it while transformers is still loading."""

from __future__ import annotations

from typing import Any

from transformers.configuration_utils import PreTrainedConfig

from .errors import CompileError
from .spec.frontend import ResolvedSpec, resolve_from_lock


class HybridConfig(PreTrainedConfig):
    """Config of a hybrid: the lock (canonical spec + resolved components) and, once discretized,
    the component each block selected."""

    model_type = "hybridc"

    def __init__(self, lock: dict[str, Any] | None = None, selection: list[str] | None = None, **kwargs):
        self.lock = lock
        self.selection = list(selection) if selection is not None else None
        kwargs.setdefault("tie_word_embeddings", True)  # ties are found per model (shared parameters)
        super().__init__(**kwargs)

    def resolved(self) -> ResolvedSpec:
        if self.lock is None:
            raise CompileError("this HybridConfig holds no spec")
        return resolve_from_lock(self.lock)

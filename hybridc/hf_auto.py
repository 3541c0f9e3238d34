"""transformers' Auto classes learn the ``hybridc`` model type when hybridc is imported.

``AutoConfig``, ``AutoModel``, ``AutoModelForCausalLM``, ``AutoModelForSequenceClassification`` and
``AutoModelForTokenClassification`` then load a saved hybrid. ``import hybridc`` must stay torch-free
(``validate``, ``fmt`` and ``diff`` never import torch), so the registration waits for transformers'
Auto classes: if they are already imported it happens at once, else a one-shot import hook runs it right
after ``transformers.models.auto.modeling_auto`` has loaded (whatever imported it).
"""

from __future__ import annotations

import importlib.abc
import sys

TRIGGER = "transformers.models.auto.modeling_auto"
AUTO_CLASS_OF_TASK = {"causal-lm": "AutoModelForCausalLM", "classify": "AutoModelForSequenceClassification",
                      "tag": "AutoModelForTokenClassification"}


def register() -> None:
    """Register the hybridc config and model classes with transformers' Auto classes (idempotent)."""
    from transformers.models.auto import modeling_auto
    from transformers.models.auto.configuration_auto import AutoConfig

    from .nn.hybrid import TASK_CLASSES, HybridConfig, HybridModel

    AutoConfig.register(HybridConfig.model_type, HybridConfig, exist_ok=True)
    modeling_auto.AutoModel.register(HybridConfig, HybridModel, exist_ok=True)
    for task, cls in TASK_CLASSES.items():
        getattr(modeling_auto, AUTO_CLASS_OF_TASK[task]).register(HybridConfig, cls, exist_ok=True)


class _RegisterAfterLoad(importlib.abc.Loader):
    """Runs the real loader of the trigger module, then ``register``."""

    def __init__(self, loader: importlib.abc.Loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        self.loader.exec_module(module)
        register()


class _AutoClassesHook(importlib.abc.MetaPathFinder):
    """Finds nothing itself: wraps the trigger module's loader, once, then leaves ``sys.meta_path``."""

    def find_spec(self, fullname, path, target=None):
        if fullname != TRIGGER:
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        for finder in sys.meta_path:
            spec = finder.find_spec(fullname, path, target) if hasattr(finder, "find_spec") else None
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _RegisterAfterLoad(spec.loader)
                return spec
        return None


def register_when_transformers_loads() -> None:
    if TRIGGER in sys.modules:
        register()
    elif not any(isinstance(f, _AutoClassesHook) for f in sys.meta_path):
        sys.meta_path.insert(0, _AutoClassesHook())

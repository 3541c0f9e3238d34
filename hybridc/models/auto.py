"""transformers' Auto classes learn the ``hybridc`` model type when hybridc is imported.

``AutoConfig``, ``AutoModel``, ``AutoModelForCausalLM``, ``AutoModelForSequenceClassification`` and
``AutoModelForTokenClassification`` then load a saved hybrid. ``import hybridc`` must stay torch-free
(``validate``, ``fmt`` and ``diff`` never import torch), so the registration waits for transformers'
Auto modules: whichever of them (``configuration_auto``, ``modeling_auto``) is already imported is
registered with at once; for the others a small import hook registers right after they load, whatever
imported them. What is registered needs no torch: the config class (``hybridc.models.config``) and stand-ins
that import the model classes when a model is loaded.
"""

from __future__ import annotations

import importlib.abc
import sys

from .remote_code import AUTO_CLASS_OF_TASK, TASK_CLASS_NAMES

CONFIG_AUTO = "transformers.models.auto.configuration_auto"
MODEL_AUTO = "transformers.models.auto.modeling_auto"
TRIGGERS = (CONFIG_AUTO, MODEL_AUTO)


def register() -> None:
    """Register hybridc with the Auto modules transformers has loaded completely (idempotent). Nothing
    here imports torch or hybridc's models: the model classes registered are ``_Deferred`` stand-ins
    that import ``hybridc.models.hybrid`` when a model is actually loaded (never inside transformers' own
    import chain)."""
    configs = sys.modules.get(CONFIG_AUTO)
    if configs is not None and hasattr(configs, "AutoConfig"):  # (a module still being imported lacks it)
        from .config import HybridConfig

        configs.AutoConfig.register(HybridConfig.model_type, HybridConfig, exist_ok=True)
    models = sys.modules.get(MODEL_AUTO)
    if models is not None and all(hasattr(models, n) for n in ("AutoModel", *AUTO_CLASS_OF_TASK.values())):
        from .config import HybridConfig

        models.AutoModel.register(HybridConfig, _deferred("HybridModel"), exist_ok=True)
        for task, auto_name in AUTO_CLASS_OF_TASK.items():
            getattr(models, auto_name).register(HybridConfig, _deferred(TASK_CLASS_NAMES[task]), exist_ok=True)


def _deferred(name: str) -> type:
    """A stand-in for ``hybridc.models.hybrid.<name>`` with the two class methods the Auto classes call."""
    from .config import HybridConfig

    def target():
        from . import hybrid

        return getattr(hybrid, name)

    return type(name, (), {
        "config_class": HybridConfig,
        "__doc__": f"Loads hybridc.models.hybrid.{name} (imported on first use).",
        "from_pretrained": classmethod(lambda cls, *args, **kwargs: target().from_pretrained(*args, **kwargs)),
        "_from_config": classmethod(lambda cls, config, **kwargs: target()._from_config(config, **kwargs)),
    })


class _RegisterAfterLoad(importlib.abc.Loader):
    """Runs the real loader of a trigger module, then ``register``."""

    def __init__(self, loader: importlib.abc.Loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        self.loader.exec_module(module)
        register()


class _AutoModulesHook(importlib.abc.MetaPathFinder):
    """Finds nothing itself: wraps the loaders of the trigger modules; leaves ``sys.meta_path`` once both
    have loaded."""

    def find_spec(self, fullname, path, target=None):
        if fullname not in TRIGGERS:
            return None
        if all(t in sys.modules or t == fullname for t in TRIGGERS) and self in sys.meta_path:
            sys.meta_path.remove(self)
        for finder in sys.meta_path:
            if finder is self:
                continue
            spec = finder.find_spec(fullname, path, target) if hasattr(finder, "find_spec") else None
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _RegisterAfterLoad(spec.loader)
                return spec
        return None


def register_when_transformers_loads() -> None:
    if any(t in sys.modules for t in TRIGGERS):
        register()
    if not all(t in sys.modules for t in TRIGGERS) and not any(isinstance(f, _AutoModulesHook) for f in sys.meta_path):
        sys.meta_path.insert(0, _AutoModulesHook())

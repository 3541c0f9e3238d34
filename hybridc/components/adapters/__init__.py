"""Build or load a family's transformers model and wrap it in the family's adapter.

``build_model`` (from-scratch components; checkpoints: ``hybridc.components.pretrained``) returns the family's
own ``*ForCausalLM`` (``Family.model_class``); ``load_adapter`` wraps it in ``Family.adapter``.
Importing this package imports torch and transformers; the torch-free side is ``hybridc.components.family``.
"""

from __future__ import annotations

from ..quiet import install as _quiet_install
from .base import ComponentAdapter, Segment
from .construct import build_model, build_on_meta, config_class, load_adapter, model_class

_quiet_install()  # transformers' advice to install mamba-ssm / causal-conv1d, where hybridc runs Mamba (components.quiet)

__all__ = [
    "ComponentAdapter",
    "Segment",
    "build_model",
    "build_on_meta",
    "config_class",
    "load_adapter",
    "model_class",
]

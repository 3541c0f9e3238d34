"""What a hybrid's forward returns besides its logits, as transformers models return it: the hidden states of
``output_hidden_states`` and the attention weights of ``output_attentions``.

Attention weights come from the components' own attention modules, found as their family's model finds them
(its ``_can_record_outputs["attentions"]``: the attention class and the index of the weights in its output) and
read by forward hooks that live for one forward. A family computing attention with SDPA or flash attention
returns no weights (transformers' own models then return none and say so): ``AttentionRecorder`` warns, naming
the component and the fix (``model.set_attn_implementation("eager")``).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class AttentionSpec:
    """Which modules of a family return attention weights, and where in their output (transformers'
    ``OutputRecorder``: a class, or a class-name suffix, optionally under a layer name)."""

    target_class: type | None
    index: int = 1
    class_name: str | None = None
    layer_name: str | None = None

    def matches(self, name: str, module: nn.Module) -> bool:
        if self.target_class is not None and isinstance(module, self.target_class):
            found = True
        else:
            found = self.class_name is not None and name.endswith(self.class_name)
        if found and self.layer_name is not None:
            found = f".{self.layer_name.strip('.')}." in f".{name}."
        return found


def attention_specs(model: nn.Module) -> list[AttentionSpec]:
    """The attention recorders of a component's transformers model (empty for a family without attention
    weights: Mamba, RWKV, ...), from its ``_can_record_outputs``."""
    recorders = getattr(type(model), "_can_record_outputs", None) or {}
    entries = recorders.get("attentions")
    if entries is None:
        return []
    specs = []
    for entry in entries if isinstance(entries, list) else [entries]:
        if isinstance(entry, str):
            specs.append(AttentionSpec(None, 1, class_name=entry))
        elif isinstance(entry, type):
            specs.append(AttentionSpec(entry, 1))
        else:  # an OutputRecorder
            specs.append(AttentionSpec(entry.target_class, entry.index, entry.class_name, entry.layer_name))
    return specs


class AttentionRecorder:
    """Records the attention weights of the attention modules under ``blocks`` during one forward, in the order
    they run (block by block; within a mixed block, in the components' order). ``components`` maps a component
    name to its transformers model (for its recorders and its attention implementation)."""

    def __init__(self, blocks: nn.Module, components: Mapping[str, nn.Module]):
        self.weights: list[torch.Tensor] = []
        self.silent: dict[str, str] = {}  # component -> its attention implementation, when it returned none
        self.modules: list[tuple[str, nn.Module, int]] = []
        for component, model in components.items():
            specs = attention_specs(model)
            if not specs:
                continue
            own = {id(m) for m in model.modules()}  # (two components of one family share classes)
            for name, module in blocks.named_modules():
                spec = next((s for s in specs if s.matches(name, module)), None)
                if spec is not None and id(module) in own:
                    self.modules.append((component, module, spec.index))

    @contextmanager
    def recording(self) -> Iterator["AttentionRecorder"]:
        handles = [module.register_forward_hook(self._hook(component, index))
                   for component, module, index in self.modules]
        try:
            yield self
        finally:
            for handle in handles:
                handle.remove()

    def _hook(self, component: str, index: int):
        def hook(module, args, output):
            weights = output[index] if isinstance(output, (tuple, list)) and len(output) > index else None
            if isinstance(weights, torch.Tensor):
                self.weights.append(weights)  # (B, heads, T, past + T)
            else:
                config = getattr(module, "config", None)
                self.silent[component] = getattr(config, "_attn_implementation", None) or "its attention kernel"
        return hook

    def warn(self) -> None:
        """Say plainly what ``output_attentions`` could not return."""
        if not self.modules:
            warnings.warn("output_attentions: no component of this hybrid that runs has attention layers that return "
                          "weights (Mamba, RWKV, ... have none): attentions is empty", UserWarning, stacklevel=3)
        for component, implementation in self.silent.items():
            warnings.warn(f"output_attentions: component '{component}' computes attention with {implementation}, "
                          "which returns no weights, so its layers are missing from attentions (hint: "
                          "model.set_attn_implementation('eager'), or from_pretrained(..., "
                          "attn_implementation='eager'))", UserWarning, stacklevel=3)


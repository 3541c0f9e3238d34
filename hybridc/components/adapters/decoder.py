"""The generic adapter: any decoder family of the architecture table, cut into segments.

A family's model forward computes, before its layer loop, everything its layers need besides the hidden
state -- position ids, a causal mask per layer type (full, sliding, chunked; the 2-D padding mask for
recurrent layers), rotary tables (per layer type in Gemma 3), alibi biases, the cache, the original
embeddings Zamba2's shared blocks read -- and hands it to each layer. hybridc does not re-derive any of
it. ``prepare`` runs the family's own base-model forward on a *shell*: a shallow copy of the base model
whose layers are stand-ins that record the arguments of their call and do nothing else, whose dropouts
are identities and whose final norm is skipped. The recorded arguments are the ``StepContext``; a
segment runs the real layers [start, stop) with them, so each layer gets exactly what the family's own
forward would give it (tested for every family against its own logits and its own ``generate``).

What happens to the hidden state outside the layers -- the start of the first segment (position
embeddings, multipliers, embedding dropout) and the final norm of the last -- is declared in the
table (``Architecture.start``, ``final_norm``), as are logit transforms of the head (``logits``).

Cached decoding: ``new_cache()`` is a ``ComponentCache``, the family's own ``DynamicCache(config=...)``
(attention layers, sliding-window layers, conv and SSM state layers, ...) that also counts the tokens the
hybrid has fed it, so masks and positions are right even when some of the component's layers never run
(a discretized hybrid that kept only its last block, or a branch whose weight is a constant 0).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from transformers.cache_utils import Cache, CacheLayerMixin, DynamicCache

from ..architectures import Architecture
from .base import ComponentAdapter, Segment, StepContext, layer_output

Call = tuple[tuple[Any, ...], dict[str, Any]]  # a layer's positional arguments after the hidden state, keywords


class ComponentCache(DynamicCache):
    """A component's own ``DynamicCache(config=...)`` plus ``seen``: the tokens fed to the component before
    this forward (the adapter's ``prepare`` counts them, after recording what its layers are given).

    The family's forward sizes positions and masks from ``get_seq_length()`` and ``get_mask_sizes(q, i)`` of
    its first layer of each kind; in a hybrid that layer may never run. Every layer that runs holds ``seen``
    tokens, so ``get_seq_length`` answers ``seen``, and mask sizes come from a layer of the same kind that
    is in step with it.
    """

    def __init__(self, config: Any):
        super().__init__(config=config)
        self.seen = 0

    def advance(self, tokens: int) -> None:
        """Count ``tokens`` more tokens fed to the component (``prepare`` does, once per forward)."""
        self.seen += tokens

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.seen

    def get_mask_sizes(self, query_length: int, layer_idx: int) -> tuple[int, int]:
        if layer_idx < len(self.layers) and self.seen:
            layer = self.layers[layer_idx]
            if isinstance(layer, CacheLayerMixin) and layer.get_seq_length() != self.seen:
                twin = next((other for other in self.layers if type(other) is type(layer)
                             and getattr(other, "sliding_window", None) == getattr(layer, "sliding_window", None)
                             and other.get_seq_length() == self.seen), None)
                if twin is not None:
                    return twin.get_mask_sizes(query_length)
                return query_length + self.seen, 0  # no layer of this kind runs: the size is never used
        return super().get_mask_sizes(query_length, layer_idx)

    def reset(self) -> None:
        super().reset()
        self.seen = 0

    def crop(self, tokens_to_remove: int) -> None:
        """Forget the last ``-tokens_to_remove`` tokens (transformers' convention: a negative count). Layers that
        never ran hold nothing to forget (transformers' sliding-window layer cannot crop before its first update)."""
        for layer in self.layers:
            if not isinstance(layer, CacheLayerMixin) or layer.is_initialized:
                layer.crop(tokens_to_remove)
        if tokens_to_remove < 0:
            self.seen = max(0, self.seen + tokens_to_remove)


class _LayerStandIn:
    """Takes layer ``index``'s place in a shell: records the call, returns the hidden state unchanged
    (as a tensor, or as the tuple the family's loop unpacks). Other attributes are the real layer's."""

    def __init__(self, layer: nn.Module, index: int, calls: dict[int, Call], returns_tuple: bool):
        self._layer, self._index, self._calls, self._tuple = layer, index, calls, returns_tuple

    def __call__(self, hidden_states, *args, **kwargs):
        self._calls[self._index] = (args, kwargs)
        return (hidden_states, None) if self._tuple else hidden_states

    def __getattr__(self, name: str):
        return getattr(self._layer, name)


class _PositionsStandIn:
    """Takes a position embedding's place in a shell (GPT-2's ``wpe``): keeps the positions it is called with
    and returns zeros of the embedding's shape. The shell's hidden state is discarded, and the embedding
    itself belongs to the first segment, which a hybrid may not hold."""

    def __init__(self, width: int):
        self.width = width
        self.args: tuple[Any, ...] = ()

    def __call__(self, positions: torch.Tensor, *args):
        self.args = (positions, *args)
        return torch.zeros(*positions.shape, self.width, device=positions.device)


def _identity(x, *args, **kwargs):
    """Takes the place of a shell's dropouts and final norm."""
    return x


class Shell:
    """Runs a family's base-model forward with stand-ins for its layers; see the module doc."""

    def __init__(self, model: nn.Module, architecture: Architecture):
        self.model = model
        self.architecture = architecture

    @property
    def base(self) -> nn.Module:
        return getattr(self.model, self.architecture.base)

    def record(
        self,
        h: torch.Tensor,  # (B, T, d_m): what the first layer would be given (its values matter to Zamba2 only)
        attention_mask: torch.Tensor | None,  # (B, past + T)
        position_ids: torch.Tensor | None,  # (B or 1, T)
        cache: Cache | None,
    ) -> tuple[list[Call], dict[str, tuple[Any, ...]]]:
        """The arguments the family's forward gives each of its layers, and the inputs of its position modules."""
        arch = self.architecture
        base = self.base
        layers = getattr(base, arch.layers)
        calls: dict[int, Call] = {}
        shell = copy.copy(base)
        modules = dict(base._modules)
        del modules[arch.layers]
        # Stand-ins are plain callables in the shell's __dict__, not modules: the shell and they are no part of the
        # hybrid, and torch.export names every module called while tracing by its path in the exported model
        stand_ins: dict[str, Any] = {}
        if arch.final_norm in modules:
            stand_ins[arch.final_norm] = _identity
        for name, module in modules.items():
            if isinstance(module, nn.Dropout):
                stand_ins[name] = _identity
        positions = {}
        for kind, name in arch.start:
            if kind == "positions":
                positions[name] = stand_ins[name] = _PositionsStandIn(h.shape[-1])
        for name in stand_ins:
            del modules[name]
        # The shell's children are attributes in its __dict__, read without nn.Module.__getattr__ (which
        # torch.export's tracer intercepts for every module, naming it by its path in the exported model: the
        # shell has none; the children it calls, rotary tables, are the hybrid's own, registered in segments)
        shell.__dict__["_modules"] = {}
        shell.__dict__.update(modules)
        shell.__dict__.update(stand_ins)
        shell.__dict__["training"] = False  # no randomness: its hidden state is discarded (dropout is start work)
        # buffers of the base model itself (RecurrentGemma's normalizer) only scale the hidden state the shell
        # discards; the hybrid does not hold them, so they may be unmaterialized (a model loaded from disk) or
        # elsewhere (a model moved to a device): the shell gets stand-ins on h's device
        shell.__dict__["_buffers"] = {}
        shell.__dict__.update({name: torch.ones(buffer.shape, dtype=buffer.dtype, device=h.device)
                               for name, buffer in base._buffers.items() if buffer is not None})
        shell.__dict__["_parameters"] = {}
        shell.__dict__.update(base._parameters)
        shell.__dict__["_forward_hooks"] = type(base._forward_hooks)()
        shell.__dict__["_forward_pre_hooks"] = type(base._forward_pre_hooks)()
        shell.__dict__[arch.layers] = [
            _LayerStandIn(layer, i, calls, arch.layer_output == "tuple") for i, layer in enumerate(layers)]
        if attention_mask is not None and arch.mask_columns == "new":
            attention_mask = attention_mask[:, -h.shape[1]:]
        kwargs: dict[str, Any] = {"inputs_embeds": h, "attention_mask": attention_mask, "use_cache": cache is not None}
        if position_ids is not None:
            kwargs["position_ids"] = position_ids
        kwargs[arch.cache_argument] = cache
        shell.forward(**kwargs)  # (not shell(...): the shell is no module of the hybrid; its hooks are cleared anyway)
        missing = [i for i in range(len(layers)) if i not in calls]
        if missing:
            raise RuntimeError(f"{arch.name}: its forward did not call layers {missing}")
        return [calls[i] for i in range(len(layers))], {name: rec.args for name, rec in positions.items()}


class DecoderSegment(Segment):
    """Layers [start, stop) of a family of the architecture table: (B, T, d_m) -> (B, T, d_m).

    start == 0: the family's start work first (``Architecture.start``); stop == L: its final norm last.
    Each layer is called with the arguments the family's own forward gives it (``StepContext.calls``, from
    the adapter's ``prepare``; without a context the segment prepares one for its input).
    """

    def __init__(self, adapter: "DecoderAdapter", start: int, stop: int):
        super().__init__(start, stop)
        arch = adapter.architecture
        base = adapter.base
        self.__dict__["_adapter"] = adapter  # not a submodule: the model's parts are registered below
        self.layers = nn.ModuleList(adapter.layers()[start:stop])
        self._start_ops: list[tuple[str, str]] = list(arch.start) if start == 0 else []
        if start == 0:
            for kind, name in arch.start:
                if kind in ("positions", "module"):
                    self.add_module(name, base._modules[name])
        for name in adapter.context_modules():
            self.add_module(name, base._modules[name])
        self.final_norm_name = arch.final_norm if stop == adapter.num_layers else None
        if self.final_norm_name is not None:
            self.add_module(self.final_norm_name, base._modules[self.final_norm_name])

    def forward(
        self,
        h: torch.Tensor,  # (B, T, d_m)
        attention_mask: torch.Tensor | None = None,  # (B, T)
        position_ids: torch.Tensor | None = None,  # (B or 1, T)
        context: StepContext | None = None,
    ) -> torch.Tensor:  # (B, T, d_m)
        if context is None:
            context = self._adapter.prepare(h, attention_mask, position_ids)
        for kind, name in self._start_ops:
            h = self._adapter.start_op(h, kind, name, context, self.training)
        for index, layer in zip(range(self.start, self.stop), self.layers):
            args, kwargs = context.calls[index]
            h = layer_output(layer(h, *args, **kwargs))
        if self.final_norm_name is not None:
            h = self._modules[self.final_norm_name](h)
        return h


class DecoderAdapter(ComponentAdapter):
    """The adapter of every ``recorded`` family of the architecture table."""

    def __init__(self, model: nn.Module, architecture: Architecture):
        super().__init__(model)
        self.architecture = architecture
        self.family_name = architecture.name
        self.shell = Shell(model, architecture)

    @property
    def base(self) -> nn.Module:
        return getattr(self.model, self.architecture.base)

    def layers(self) -> nn.ModuleList:
        layers = getattr(self.base, self.architecture.layers)
        count = getattr(self.config, self.architecture.keys.layers, None)
        return layers[:count] if isinstance(count, int) else layers

    def embedding(self) -> nn.Module:
        return self.base._modules[self.architecture.embedding]

    def lm_head(self) -> nn.Module:
        return self.model._modules[self.architecture.head]

    def final_norm(self) -> nn.Module | None:
        return self.base._modules.get(self.architecture.final_norm)

    def start_modules(self) -> list[nn.Module]:
        """Modules of the first segment besides its layers: the start work's (GPT-2's ``wpe``) and the
        base model's other children (rotary tables, normally parameter-free)."""
        names = [name for kind, name in self.architecture.start if kind in ("positions", "module")]
        return [self.base._modules[name] for name in names + self.context_modules()]

    def context_modules(self) -> list[str]:
        """Children of the base model its forward uses besides the layers (rotary tables): segments register
        them, so that moving the hybrid to a device or dtype moves them too."""
        arch = self.architecture
        own = {arch.embedding, arch.layers, arch.final_norm} | {name for _, name in arch.start}
        return [name for name, module in self.base.named_children()
                if name not in own and not isinstance(module, nn.Dropout)]

    def segment(self, start: int, stop: int) -> DecoderSegment:
        self.check_range(start, stop)
        return DecoderSegment(self, start, stop)

    def new_cache(self) -> ComponentCache:
        return ComponentCache(self.config)

    def prepare(
        self,
        h: torch.Tensor,  # (B, T, d_m)
        attention_mask: torch.Tensor | None = None,  # (B, past + T)
        position_ids: torch.Tensor | None = None,  # (B or 1, T)
        cache: Cache | None = None,
    ) -> StepContext:
        """What the family's forward gives its layers for these T tokens (after what ``cache`` holds); with a
        cache, the tokens are counted in it."""
        if cache is not None and not isinstance(cache, (ComponentCache, self.cache_class)):
            raise ValueError(f"a {self.family_name} component needs its own cache: use the adapter's new_cache()")
        past, length = (cache.seen if cache is not None else 0), h.shape[1]
        self.check_inputs(past, length, attention_mask, position_ids)
        if cache is not None and past == 0 and self.architecture.fresh_state:  # RecurrentGemma's module states
            getattr(self.base, self.architecture.fresh_state)(self.config, h.shape[0], h.device, h.dtype)
        calls, position_inputs = self.shell.record(h, attention_mask, position_ids, cache)
        if cache is not None:
            cache.advance(length)
        if position_ids is None:
            position_ids = torch.arange(past, past + length, device=h.device).unsqueeze(0)
        return StepContext(cache=cache, position_ids=position_ids, mask=None, attention_mask=attention_mask,
                           past_length=past, calls=tuple(calls), position_inputs=position_inputs)

    cache_class: type = ComponentCache

    def check_inputs(self, past: int, length: int, attention_mask: torch.Tensor | None,
                     position_ids: torch.Tensor | None) -> None:
        """ValueError for inputs the family's forward would misread: a padding mask that does not cover the
        cached and new tokens, positions for another number of tokens, default positions past a learned
        position table."""
        if attention_mask is not None and attention_mask.ndim == 2 and attention_mask.shape[-1] != past + length:
            raise ValueError(
                f"attention_mask has {attention_mask.shape[-1]} columns; with {past} cached tokens and "
                f"{length} new ones it must cover all {past + length} (the whole sequence so far)")
        if position_ids is not None and position_ids.shape[-1] != length:
            raise ValueError(f"position_ids cover {position_ids.shape[-1]} tokens, the input has {length}")
        if position_ids is None and any(kind == "positions" for kind, _ in self.architecture.start):
            limit = getattr(self.config, self.architecture.keys.max_length)
            if past + length > limit:
                raise ValueError(f"{past} cached + {length} new tokens exceed the {limit} positions of "
                                 f"{self.family_name}'s position table")

    def start_op(self, h: torch.Tensor, kind: str, name: str, context: StepContext, training: bool) -> torch.Tensor:
        """One step of the family's start work on h (B, T, d_m)."""
        base = self.base
        if kind == "dropout":
            return nn.functional.dropout(h, p=getattr(self.config, name), training=training)
        if kind == "positions":
            return h + base._modules[name](*context.position_inputs[name])
        if kind == "module":
            return base._modules[name](h)
        if kind == "scale":
            return h * getattr(self.config, name)
        if kind == "scale_sqrt_width":
            scale = torch.tensor(getattr(self.config, self.architecture.keys.hidden) ** 0.5, dtype=getattr(torch, name))
            return h * scale.to(device=h.device, dtype=h.dtype)
        raise ValueError(f"unknown start step {kind!r}")

    def logit_ops(self) -> tuple[tuple[str, float], ...]:
        """The family's logit transforms with their values (ops whose config value is null are dropped)."""
        ops = []
        for kind, key in self.architecture.logits:
            value = getattr(self.config, key, None)
            if value is not None:
                ops.append((kind, float(value)))
        return tuple(ops)

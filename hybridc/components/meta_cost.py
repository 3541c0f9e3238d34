"""Exact parameter counts and measured FLOPs of any family, from its model on PyTorch's meta device.

The meta device gives every tensor a shape and no storage, so building a family's ``*ForCausalLM`` there
costs no memory and no weight initialisation. Parameters are counted as the adapter splits the model
(embedding, the first segment's own extras, each layer, the final norm, an untied head); a parameter
several layers share (Zamba2's shared blocks) is counted once, in ``ParamCounts.shared`` with the layers
that use it (the graph gives it to the first segment that runs one of them).

FLOPs per token of each layer are measured, not estimated: the layer runs once on meta tensors of the
spec's context length, with the arguments the family's own forward gives it, under
``torch.utils.flop_counter.FlopCounterMode`` (matrix products, convolutions and attention; element-wise
work is not counted, and attention counts the whole T x T score matrix, as the built-in families'
formulas do). Layers with the same structure are measured once; families without attention, whose cost
per token does not grow with the context, at a short one. A layer that cannot run on meta
(data-dependent shapes, as in some expert routers) is counted from its weights instead: two FLOPs per
weight of its linear maps, expert weights in proportion to the experts a token uses.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
import json

import torch
from torch import nn

from .family import Family, ParamCounts


# The context at which families without attention are measured: their FLOPs per token do not depend on it,
# and some run Python loops over the tokens (RWKV's CPU path), slow even on meta tensors at long contexts.
RECURRENT_LENGTH = 64


@dataclass(frozen=True)
class Measured:
    params: ParamCounts
    layer_flops: tuple[int, ...]  # per layer, forward FLOPs per token at the measured context length


def _count(params) -> int:
    return sum(p.numel() for p in params)


@lru_cache(maxsize=128)
def measure(family: Family, config_json: str, seq_len: int) -> Measured:
    """Counts of ``family`` with the config.json dict ``config_json`` (sorted JSON); FLOPs at ``seq_len``
    (0: parameters only). Pure: the same arguments give the same answer, so answers are memoised."""
    from .quiet import measuring
    from .adapters.construct import build_on_meta, load_adapter

    model = build_on_meta(family, json.loads(config_json))
    adapter = load_adapter(family, model)
    if seq_len and not family.has_attention:  # no cost grows with the context: measure a short one
        seq_len = min(seq_len, RECURRENT_LENGTH)
    with measuring():  # (its notes on missing CUDA kernels)
        return Measured(params=_param_counts(adapter), layer_flops=_layer_flops(adapter, seq_len) if seq_len else ())


@lru_cache(maxsize=128)
def measure_state(family: Family, config_json: str, seq_len: int) -> tuple[int | None, ...]:
    """Numbers each layer of ``family`` (config.json dict ``config_json``) keeps per sequence for decoding
    after ``seq_len`` tokens: the tensors of its cache layer after a prefill of ``seq_len`` tokens on the meta
    device (keys and values of attention, convolution windows and recurrent states of linear-attention layers;
    0 for a layer that keeps nothing, as an MLP-only layer). None for every layer when the model cannot run
    on meta (data-dependent expert routing) or keeps its state outside transformers' cache layers."""
    from .quiet import measuring
    from .adapters.construct import build_on_meta

    config = json.loads(config_json)
    model = build_on_meta(family, config)
    layers = family.shape(config).num_layers
    if not family.has_attention:  # a recurrent state does not grow with the context: a short prefill tells it
        seq_len = min(seq_len, RECURRENT_LENGTH)
    ids = torch.zeros(1, max(int(seq_len), 1), dtype=torch.long, device="meta")
    try:
        with measuring(), torch.no_grad(), _no_packed_sequences():
            out = model(input_ids=ids, use_cache=True)
    except Exception:  # noqa: BLE001 - cannot run on meta: unknown
        return (None,) * layers
    cache = getattr(out, "past_key_values", None) or getattr(out, "cache_params", None)
    cache = getattr(cache, "self_attention_cache", cache)  # an encoder-decoder cache: a decoder caches no encoder
    cached = getattr(cache, "layers", None)
    if not isinstance(cached, (list, tuple)) or len(cached) != layers:
        return (None,) * layers
    per_layer = []
    for layer in cached:
        per_layer.append(sum(t.numel() for v in vars(layer).values() for t in _tensors_in(v)))  # 0: no state
    return tuple(per_layer)


def _tensors_in(value) -> list[torch.Tensor]:
    """The tensors a cache layer's attribute holds: itself, or those of a list, tuple or dict of them."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, torch.Tensor)]
    return []


def _param_counts(adapter) -> ParamCounts:
    seen: set[int] = set()

    def own(module: nn.Module | None) -> int:
        if module is None:
            return 0
        fresh = [p for p in module.parameters() if id(p) not in seen]
        seen.update(id(p) for p in fresh)
        return _count(fresh)

    embedding = own(adapter.embedding())
    users: dict[int, list[int]] = {}  # parameter -> the layers that use it
    params: dict[int, nn.Parameter] = {}
    for index, layer in enumerate(adapter.layers()):
        for p in layer.parameters():
            if id(p) not in seen:
                users.setdefault(id(p), []).append(index)
                params[id(p)] = p
    groups: dict[tuple[int, ...], int] = {}
    for key, indices in users.items():
        if len(indices) > 1:
            groups[tuple(indices)] = groups.get(tuple(indices), 0) + params[key].numel()
            seen.add(key)
    layers = tuple(own(layer) for layer in adapter.layers())
    shared = tuple((count, indices) for indices, count in sorted(groups.items()))
    final = own(adapter.final_norm())
    head = own(adapter.lm_head())
    position = sum(own(m) for m in adapter.start_modules())  # the first segment's own extras
    total = _count({id(p): p for p in adapter.model.parameters()}.values())
    counts = ParamCounts(embedding=embedding, position=position, layers=layers, final_norm=final, head=head,
                         shared=shared)
    if counts.total != total:
        raise RuntimeError(f"{adapter.family_name}: the parts hold {counts.total} parameters, the model {total}")
    return counts


def _signature(layer: nn.Module, call) -> tuple:
    args, kwargs = call
    shapes = tuple((name, tuple(p.shape)) for name, p in layer.named_parameters())
    kinds = tuple(sorted((k, type(v).__name__) for k, v in kwargs.items()))
    return type(layer).__name__, shapes, kinds, tuple(type(a).__name__ for a in args)


@contextmanager
def _no_packed_sequences():
    """transformers looks for packed sequences in the position ids (a data-dependent test meta tensors
    cannot answer); a measurement has one plain sequence."""
    from transformers import masking_utils

    original = masking_utils.find_packed_sequence_indices
    masking_utils.find_packed_sequence_indices = lambda position_ids: None
    try:
        yield
    finally:
        masking_utils.find_packed_sequence_indices = original


def _layer_flops(adapter, seq_len: int) -> tuple[int, ...]:
    from torch.utils.flop_counter import FlopCounterMode

    width = adapter.embedding().weight.shape[1]
    h = torch.zeros(1, seq_len, width, device="meta")
    with _no_packed_sequences():
        context = adapter.prepare(h)
    measured: dict[tuple, int] = {}
    out = []
    for index, layer in enumerate(adapter.layers()):
        call = context.calls[index] if context.calls is not None else ((), {})
        key = _signature(layer, call)
        if key not in measured:
            try:
                with torch.no_grad(), FlopCounterMode(display=False) as counter:
                    args, kwargs = call
                    layer(h, *args, **kwargs)
                measured[key] = round(counter.get_total_flops() / seq_len)
            except Exception:  # noqa: BLE001 - data-dependent ops cannot run on meta: count weights
                measured[key] = _static_flops(layer, adapter.config)
        out.append(measured[key])
    return tuple(out)


def _static_flops(layer: nn.Module, config) -> int:
    """Two FLOPs per weight of the layer's linear maps; stacked expert weights (E, ...) count top_k / E."""
    experts = getattr(config, "num_experts", None) or getattr(config, "num_local_experts", None)
    top_k = getattr(config, "num_experts_per_tok", None)
    total = 0
    for name, p in layer.named_parameters():
        if p.ndim < 2:
            continue
        weights = p.numel()
        if experts and top_k and p.ndim == 3 and p.shape[0] == experts:
            weights = weights * top_k // experts
        total += 2 * weights
    return total

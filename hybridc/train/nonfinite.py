"""Where a non-finite loss came from, named as the hybrid names its parts.

A parameter holding a non-finite value or gradient names its group (and the parameter). When every
parameter is finite (an activation overflowed: a huge learning rate's weights a step before, fp16), the
failed micro-batch is run again without gradients, with a hook on every module, and the first module
whose output is non-finite while its inputs are finite is named: ``the embedding of 'attn'``, ``the
projector into 'ssm' in block 1``, ``component 'ssm' in block 1 (layers 1..2), layer 1 (mixer)``,
``the head``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn


def nonfinite_parameters(model: nn.Module) -> dict[str, tuple[str, str]]:
    """{group: (its first parameter holding a non-finite value or gradient, "values" or "gradients")}, in
    the order of ``model.param_groups()``."""
    bad: dict[str, tuple[str, str]] = {}
    for group, params in model.param_groups().items():
        for name, p in params:
            if not torch.isfinite(p).all():
                bad[group] = (name, "values")
                break
            if p.grad is not None and not torch.isfinite(p.grad).all():
                bad[group] = (name, "gradients")
                break
    return bad


def describe_parameters(bad: Mapping[str, tuple[str, str]]) -> str:
    """``non-finite values in: embeddings (embed.sources.attn.weight); non-finite gradients in: ...``."""
    parts = []
    for kind in ("values", "gradients"):
        groups = [f"{group} ({name})" for group, (name, k) in bad.items() if k == kind]
        if groups:
            parts.append(f"non-finite {kind} in: {', '.join(groups)}")
    return "; ".join(parts)


def _finite(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        if not (value.is_floating_point() or value.is_complex()):
            return True
        return bool(torch.isfinite(value).all())
    if isinstance(value, (tuple, list)):
        return all(_finite(v) for v in value)
    if isinstance(value, Mapping):
        return all(_finite(v) for v in value.values())
    return True


def first_nonfinite_module(model: nn.Module, forward: Callable[[], Any]) -> str | None:
    """The qualified name of the module where ``forward()`` (run again here, without gradients) first went
    non-finite: the first to finish (so the innermost) whose output is non-finite while its inputs are
    finite (masks aside: an additive mask may hold -inf); None when every output is finite."""
    origin: list[str] = []
    fallback: list[str] = []

    def hook(name: str):
        def check(module, args, kwargs, output) -> None:
            if origin or _finite(output):
                return
            if not fallback:
                fallback.append(name)
            inputs = [*args, *(v for k, v in kwargs.items() if "mask" not in k)]
            if _finite(inputs):
                origin.append(name)
        return check

    handles = [m.register_forward_hook(hook(name), with_kwargs=True) for name, m in model.named_modules() if name]
    try:
        with torch.no_grad():
            forward()
    finally:
        for handle in handles:
            handle.remove()
    return (origin or fallback or [None])[0]


def place_of(model: nn.Module, name: str) -> str:
    """A module of a ``HybridModel`` named by what it is in the hybrid (``name`` as ``named_modules`` gives it)."""
    parts = name.split(".")

    def rest(k: int) -> str:  # the module inside the part, as named in its own model
        return f" ({'.'.join(parts[k:])})" if len(parts) > k else ""

    try:
        if parts[0] == "embed":
            return f"the embedding of '{parts[2]}'{rest(3)}" if len(parts) > 2 else "the embedding"
        if parts[0] == "head":
            if len(parts) > 2 and parts[1] == "heads":
                return f"the head of '{parts[2]}'{rest(3)}"
            return f"the head{rest(1)}"
        if parts[0] == "blocks":
            i = int(parts[1])
            if len(parts) == 2:
                return f"block {i} (the sum of its branches)"
            if parts[2] == "mix":
                return f"the mixture weights of block {i}"
            m = parts[3]
            if parts[2] in ("projector_in", "projector_out"):
                direction = "into" if parts[2] == "projector_in" else "out of"
                return f"the projector {direction} '{m}' in block {i}{rest(4)}"
            if parts[2] == "segments":
                segment = model.blocks[i].segments[m]
                start, stop = getattr(segment, "start", None), getattr(segment, "stop", None)
                where = f"component '{m}' in block {i}" + (f" (layers {start}..{stop})" if start is not None else "")
                if len(parts) > 5 and parts[4] == "layers" and start is not None:
                    return f"{where}, layer {start + int(parts[5])}{rest(6)}"
                return where + rest(4)
    except (IndexError, KeyError, ValueError, AttributeError):
        pass
    return name


def where_nonfinite(model: nn.Module, forward: Callable[[], Any], world: int = 1) -> str:
    """Why a loss is non-finite, for the error: the parameter groups holding non-finite values or gradients,
    else the part of the hybrid where ``forward()`` (the failed micro-batch, run again) first went non-finite."""
    bad = nonfinite_parameters(model)
    if bad:
        return describe_parameters(bad)
    try:
        name = first_nonfinite_module(model, forward)
    except Exception as err:  # noqa: BLE001 - a diagnosis that fails must not hide the error it explains
        return f"every parameter is finite; running the batch again to find where failed ({type(err).__name__})"
    if name is not None:
        return f"every parameter is finite; the forward first went non-finite in {place_of(model, name)}"
    if world > 1:
        return "every parameter is finite, and so is this process's share of the batch: another process's went non-finite"
    return "every parameter and every module's output is finite: the loss itself overflowed"

"""The fast decode path of a hybrid: what a generated token costs beyond reading the weights, cut down.

At batch 1 a decode step multiplies one token's vector by every weight matrix: it is bound by memory
bandwidth, and whatever runs beside the matrix-vector products (PyTorch's dispatch of small operations,
a GEMM library's small-M path) is time the hardware does not need. In a decode step of a ``HybridModel``
(one token per sequence, a cache, no gradient, CPU), the fast path (``decode_path = "fast"``, the default)

- runs each Mamba layer's single-token update in one C call (``hybridc.kernels.mamba_step``, the segments'
  ``step_kernel``), in place of transformers' ~30 small operations per layer;
- runs every linear map of the step -- the components' own layers, the projectors, the head -- whose input has
  at most ``SMALL_ROWS`` rows (a batch of up to 16 sequences) through ``linear_fwd`` (``mamba_kernels.c``): at
  batch 1 (weights with rows of at most ``MATVEC_MAX_WIDTH``) a matrix-vector product that streams the weight's
  rows one after the other, at the model's shapes (768- to 3072-wide rows) up to 30-50% faster than PyTorch's on
  this 2-core machine; at a larger batch each weight row read
  from memory once and used for every sequence while in cache, where a GEMM library's small-M path packs or
  re-reads the weight (several times slower at batch 8). It is a ``TorchFunctionMode`` active only during the
  step (``small_linears``): the families' own layers run unchanged (every PyTorch call of the step passes
  through the mode, a microsecond or two each).

``decode_path = "eager"`` runs the step as before (transformers' Mamba update, PyTorch's linear): the
reference the fast path is tested against (the same tokens, logits within float32 rounding, every family).
Prefill (several tokens) and anything with gradients are untouched.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Optional

import torch
from torch.overrides import TorchFunctionMode

from . import library as kernels
from .library import ptr

DECODE_PATHS = ("fast", "eager")
SMALL_ROWS = 16  # inputs with at most this many rows (a decode step's batch) take linear_fwd
# a single row takes it for weights with rows shorter than this (the model's shapes, where it reads faster than
# PyTorch's matrix-vector product; with rows of 8192 it read slower, measured with benchmarks' shapes)
MATVEC_MAX_WIDTH = 4096


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    """x (..., k) with at most SMALL_ROWS rows, weight (n, k), bias (n,) or None, contiguous, one dtype -> (..., n)."""
    rows = x.reshape(-1, x.shape[-1])
    if not rows.is_contiguous():
        rows = rows.contiguous()
    y = x.new_empty(rows.shape[0], weight.shape[0])
    kernels.call("linear_fwd", x.dtype, rows.shape[0], weight.shape[0], weight.shape[1], ptr(rows), ptr(weight),
                 ptr(bias), ptr(y))
    return y.reshape(*x.shape[:-1], weight.shape[0])


small_linear = torch.library.custom_op("hybridc::small_linear", _linear, mutates_args=())


@small_linear.register_fake
def _(x, weight, bias):
    return x.new_empty(*x.shape[:-1], weight.shape[0])


def _takes(x, weight, bias) -> bool:
    """Whether linear_fwd computes ``F.linear(x, weight, bias)``: CPU float32/float64 tensors of one dtype, a
    contiguous 2-D weight, at most SMALL_ROWS rows, nothing that needs a gradient."""
    if not (isinstance(x, torch.Tensor) and isinstance(weight, torch.Tensor)) or x.is_cuda or weight.is_cuda:
        return False
    if x.dtype not in (torch.float32, torch.float64) or weight.dtype != x.dtype or weight.dim() != 2:
        return False
    if x.dim() == 0 or x.shape[-1] != weight.shape[1] or x.numel() > SMALL_ROWS * x.shape[-1] or x.numel() == 0:
        return False
    if x.numel() == x.shape[-1] and weight.shape[1] > MATVEC_MAX_WIDTH:
        return False
    if bias is not None and (not isinstance(bias, torch.Tensor) or bias.dtype != x.dtype or bias.dim() != 1
                             or not bias.is_contiguous() or bias.is_cuda):
        return False
    if not weight.is_contiguous() or type(weight) not in (torch.Tensor, torch.nn.Parameter):
        return False
    return not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad
                                             or (bias is not None and bias.requires_grad)))


class SmallLinears(TorchFunctionMode):
    """Routes ``torch.nn.functional.linear`` calls that ``linear_fwd`` computes to it (see the module doc)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.nn.functional.linear:
            x, weight = args[0], args[1] if len(args) > 1 else kwargs.get("weight")
            bias = args[2] if len(args) > 2 else kwargs.get("bias")
            if _takes(x, weight, bias):
                return (small_linear if torch.compiler.is_compiling() else _linear)(x, weight, bias)
        return func(*args, **kwargs)


@contextmanager
def small_linears() -> Iterator[None]:
    """Within: small-batch linear maps run ``linear_fwd`` (when the kernels are available here)."""
    with SmallLinears() if kernels.available() else nullcontext():
        yield


def check_decode_path(path: str) -> str:
    if path not in DECODE_PATHS:
        raise ValueError(f"unknown decode path {path!r}; expected one of {DECODE_PATHS}")
    return path


def decode_step_context(model, input_ids: torch.Tensor, cache) -> "contextmanager":
    """The context a forward of ``model`` runs in: ``small_linears`` for a fast decode step (a cache, one token
    for each of at most SMALL_ROWS sequences, no gradient, eval mode), else nothing."""
    fast = (cache is not None and getattr(model, "decode_path", "eager") == "fast" and input_ids.dim() == 2
            and input_ids.shape[1] == 1 and input_ids.shape[0] <= SMALL_ROWS and not model.training
            and not torch.is_grad_enabled())
    return small_linears() if fast else nullcontext()

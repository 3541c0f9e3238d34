"""Mamba adapter: ``backbone.embeddings/layers/norm_f`` and ``lm_head`` (tied by default).

Segments run each block through ``mamba_fast.block_forward`` with a selectable scan backend
(``scan_backend``): "auto" (default: mamba-ssm's kernel on CUDA when it imports, else our chunked
CPU scan), "chunked", "reference", "cuda", or "transformers" (call the block itself: transformers'
own path, whose CPU scan is a token loop with a backward quadratic in T).
"""

from __future__ import annotations

import torch
from torch import nn

from .base import ComponentAdapter, Segment, layer_output
from .mamba_fast import block_forward, check_scan_backend


class MambaSegment(Segment):
    """Layers [start, stop) of a ``MambaForCausalLM``; ``norm_f`` when stop == L.

    No positions or causal mask. A (B, T) padding mask is handed to every block unchanged, as
    ``MambaModel.forward`` does: the mixer multiplies its input and its conv output by it (padding
    positions contribute nothing to the scan state).

    ``scan_backend`` (an attribute, may be changed later) picks how blocks run: see the module doc.
    """

    def __init__(self, model: nn.Module, start: int, stop: int, scan_backend: str = "auto"):
        super().__init__(start, stop)
        body = model.backbone
        self.layers = nn.ModuleList(body.layers[start:stop])
        self.norm_f = body.norm_f if stop == len(body.layers) else None
        self.scan_backend = check_scan_backend(scan_backend)

    def forward(
        self,
        h: torch.Tensor,  # (B, T, d)
        attention_mask: torch.Tensor | None = None,  # (B, T)
        position_ids: torch.Tensor | None = None,  # ignored
    ) -> torch.Tensor:  # (B, T, d), float32 when residual_in_fp32
        backend = check_scan_backend(self.scan_backend)
        for layer in self.layers:
            h = layer_output(block_forward(layer, h, attention_mask, backend=backend))
        if self.norm_f is not None:
            h = self.norm_f(h)
        return h

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, scan_backend={self.scan_backend!r}"


class MambaAdapter(ComponentAdapter):
    """``scan_backend``: the default of the segments it makes (see the module doc)."""

    family_name = "mamba"

    def __init__(self, model: nn.Module, scan_backend: str = "auto"):
        super().__init__(model)
        self.scan_backend = check_scan_backend(scan_backend)

    def layers(self) -> nn.ModuleList:
        return self.model.backbone.layers

    def embedding(self) -> nn.Module:
        return self.model.backbone.embeddings

    def segment(self, start: int, stop: int, scan_backend: str | None = None) -> MambaSegment:
        """Layers [start, stop); ``scan_backend`` None means the adapter's."""
        self.check_range(start, stop)
        backend = self.scan_backend if scan_backend is None else scan_backend
        return MambaSegment(self.model, start, stop, scan_backend=backend)

    def lm_head(self) -> nn.Module:
        return self.model.lm_head

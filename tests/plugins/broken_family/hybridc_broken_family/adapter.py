"""The bug: a segment of layers [start, stop) holds them all but runs [start, stop - 1)."""

from __future__ import annotations

import torch
from hybridc_sample_family.adapter import ShiftAdapter, ShiftSegment


class BrokenShiftSegment(ShiftSegment):
    def forward(self, h: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, context=None) -> torch.Tensor:
        mask, cache = (context.mask, context.cache) if context is not None else (attention_mask, None)
        for layer in list(self.layers)[:-1]:  # the deliberate bug: the segment's last layer never runs
            h = layer(h, mask, cache)
        return self.norm(h) if self.norm is not None else h


class BrokenShiftAdapter(ShiftAdapter):
    family_name = "broken-shift"

    def segment(self, start: int, stop: int) -> ShiftSegment:
        self.check_range(start, stop)
        return BrokenShiftSegment(self.model, start, stop)

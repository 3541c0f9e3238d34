"""The sample plugin family with one deliberate bug: its segments skip their last layer.

Everything else is the sample's (``hybridc_sample_family``): the model (under its own model type), the counts,
the cache. A hybrid one-hot on it then computes one layer less per segment than the model itself, which the
conformance kit must catch.
"""

from __future__ import annotations

from hybridc_sample_family import DEFAULTS, ShiftFamily


class BrokenShiftFamily(ShiftFamily):
    name = "broken-shift"
    model_types = ("broken_shift",)
    model_class = "hybridc_broken_family.modeling:BrokenShiftForCausalLM"
    adapter = "hybridc_broken_family.adapter:BrokenShiftAdapter"

    def defaults(self):
        return {**DEFAULTS, "model_type": "broken_shift"}

"""The sample family's model under the broken family's own model type."""

from __future__ import annotations

from hybridc_sample_family.modeling import ShiftConfig, ShiftForCausalLM
from transformers import AutoConfig, AutoModelForCausalLM


class BrokenShiftConfig(ShiftConfig):
    model_type = "broken_shift"


class BrokenShiftForCausalLM(ShiftForCausalLM):
    config_class = BrokenShiftConfig


AutoConfig.register(BrokenShiftConfig.model_type, BrokenShiftConfig, exist_ok=True)
AutoModelForCausalLM.register(BrokenShiftConfig, BrokenShiftForCausalLM, exist_ok=True)

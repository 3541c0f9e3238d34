"""The invariants (``hybridc.testing.invariants``) hold where hybridc keeps its promises and fail, naming the
promise, where a fault is planted: none of them can pass whatever happens."""

from __future__ import annotations

import pytest
import torch

from hybridc.components.families.gpt_neox import GPTNeoX
from hybridc.components.registry import get_family
from hybridc.models.hybrid import lower
from hybridc.testing import invariants as inv
from hybridc.testing.specs import canonical_data, one_hot, resolve
from hybridc.testing.strategies import BadSpec, Variation
from hybridc.testing.tiny import tiny_config
from tests.specs import SMALL
from tests.tiny_models import CORE_FAMILIES

# attention (rotary positions) and Mamba, two layers each in 2 blocks, fixed alphas
SPEC = (SMALL.replace("gpt-neox", "llama").replace("layers: 4", "layers: 2").replace("layers: 3", "layers: 2")
        .replace("0..1, 1..3", "0..1, 1..2"))


@pytest.fixture(scope="module")
def model():
    return lower(resolve(SPEC)).eval()


def test_parameters_match_the_graph_and_an_extra_one_is_caught(model) -> None:
    counts = inv.parameters_match_graph(model)
    assert counts["components"] > 0 and counts["alphas"] == 0  # fixed alphas are no parameters
    extra = lower(resolve(SPEC))
    extra.blocks[0].segments["attn"].register_parameter("stray", torch.nn.Parameter(torch.zeros(3)))
    with pytest.raises(inv.InvariantFailed, match="parameters equal the graph's count"):
        inv.parameters_match_graph(extra)


def test_one_hot_is_each_component_and_another_model_is_caught() -> None:
    for name in ("attn", "ssm"):
        assert inv.one_hot_is_component(SPEC, name) <= 1e-5
    rs = resolve(one_hot(canonical_data(SPEC), "attn"))
    stranger = inv.reference_model(resolve(SPEC.replace("seed", "seed").replace("train:", "train:\n  seed: 9")), "attn")
    with pytest.raises(inv.InvariantFailed, match="one-hot equals the component's own logits"):
        inv.one_hot_is_component(rs, "attn", reference=stranger)


def test_cached_decoding_catches_a_cache_that_forgets_positions(model, monkeypatch) -> None:
    assert inv.cached_decoding_is_recomputation(model) <= 1e-4
    from hybridc.components.adapters.decoder import DecoderAdapter

    original = DecoderAdapter.prepare

    def from_zero(self, h, attention_mask=None, position_ids=None, cache=None):  # every step at position 0..T-1
        ids = torch.arange(h.shape[1]).unsqueeze(0)
        return original(self, h, attention_mask, ids if cache is not None else position_ids, cache)

    monkeypatch.setattr(DecoderAdapter, "prepare", from_zero)
    with pytest.raises(inv.InvariantFailed, match="cached decoding equals recomputation"):
        inv.cached_decoding_is_recomputation(model)


def test_save_load_catches_a_model_that_loads_otherwise(model, monkeypatch) -> None:
    assert inv.save_load_same_logits(model, fresh_process=False) == 0.0
    from hybridc.models.hybrid import HybridModel

    original = HybridModel.from_pretrained.__func__

    def perturbed(cls, *args, **kwargs):
        loaded = original(cls, *args, **kwargs)
        with torch.no_grad():
            next(loaded.parameters()).add_(0.01)
        return loaded

    monkeypatch.setattr(HybridModel, "from_pretrained", classmethod(perturbed))
    with pytest.raises(inv.InvariantFailed, match="save -> fresh-process load -> same logits"):
        inv.save_load_same_logits(model, fresh_process=False)


def test_discretizing_one_hot_keeps_the_logits_where_projectors_start_as_the_identity() -> None:
    assert inv.discretized_is_one_hot(SPEC, ["ssm", "ssm"]) <= 1e-5
    assert inv.discretized_is_one_hot(SPEC.replace("{attn: linear, ssm: mlp}", "none"), ["attn", "ssm"]) <= 1e-5
    with pytest.raises(ValueError, match="do not start as the identity"):
        inv.discretized_is_one_hot(SPEC, ["attn", "ssm"])  # ssm's projectors are MLPs


def test_fmt_catches_a_canonical_form_that_changes_the_spec(monkeypatch) -> None:
    assert "projector: {attn: linear, ssm: mlp}" in inv.fmt_is_idempotent(SPEC)
    from hybridc.spec.frontend import ParsedSpec

    original = ParsedSpec.canonical_text
    monkeypatch.setattr(ParsedSpec, "canonical_text",
                        lambda self, keep_comments=True: original(self, keep_comments).replace("ssm: mlp", "ssm: linear"))
    with pytest.raises(inv.InvariantFailed, match="fmt is idempotent"):
        inv.fmt_is_idempotent(SPEC)


def test_a_variation_must_show_in_diff_as_declared() -> None:
    data = canonical_data(SPEC)
    varied = canonical_data(SPEC.replace("ssm: mlp", "ssm: mlp-skip"))
    assert inv.variation_shows_in_diff(data, Variation(varied, ("hybrid.projector.ssm",), "ssm's projector")) == [
        "hybrid.projector.ssm: mlp -> mlp-skip"]
    with pytest.raises(inv.InvariantFailed, match="a variation shows in diff"):
        inv.variation_shows_in_diff(data, Variation(varied, ("hybrid.projector.attn",), "said to be attn's"))


@pytest.mark.parametrize("family", CORE_FAMILIES)
def test_the_hand_written_counts_are_the_meta_device_s(family: str) -> None:
    meta = inv.cost_model_matches_meta(family, tiny_config(family))
    assert meta["total"] == get_family(family).param_counts(tiny_config(family)).total


def test_counts_that_miss_a_parameter_are_caught() -> None:
    class Miscounted(GPTNeoX):
        def param_counts(self, config):
            counts = super().param_counts(config)
            return type(counts)(**{**counts.__dict__, "final_norm": counts.final_norm - 1})

    with pytest.raises(inv.InvariantFailed, match="the cost model's counts equal a meta-device count"):
        inv.cost_model_matches_meta(Miscounted(), tiny_config("gpt-neox"))


def test_an_error_on_another_line_or_no_error_is_caught() -> None:
    data = canonical_data(SPEC)
    data["hybrid"]["projector"] = "lineer"
    assert inv.error_is_located(BadSpec(data, ("hybrid", "projector"), "must be a projector kind", "misspelt"))
    with pytest.raises(inv.InvariantFailed, match="no error on line"):
        inv.error_is_located(BadSpec(data, ("hybrid", "mixture"), "must be a projector kind", "wrong line"))
    with pytest.raises(inv.InvariantFailed, match="the spec validates"):
        inv.error_is_located(BadSpec(canonical_data(SPEC), ("hybrid",), "anything", "a valid spec"))


def test_the_front_end_refuses_with_located_errors_or_accepts() -> None:
    assert inv.front_end_is_total("hybridc: 1\nname: [") is None
    assert inv.front_end_is_total(SPEC) is not None

"""Torch-free family descriptors: configs, exact parameter counts, FLOPs, generated defaults."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from hybridc.components.adapters import build_model, config_class, load_adapter
from hybridc.components.pretrained import load_pretrained
from hybridc.components.family import Family, ParamCounts
from hybridc.spec.resolve import read_config_json
from hybridc.components.registry import families, family_for_model_type, get_family
from tests.tiny_models import CORE_FAMILIES, REPRESENTATIVE_FAMILIES, tiny_config

ROOT = Path(__file__).resolve().parents[2]
FAMILIES = sorted(families())
FORMULAS = sorted(CORE_FAMILIES)  # the families whose counts are hand-written formulas
HYPOTHESIS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---- registry -------------------------------------------------------------------------------------


def test_builtin_families_registered() -> None:
    assert set(FAMILIES) >= {"gpt-neo", "gpt2", "gpt-neox", "llama", "mamba", "mamba2"}
    for name in ["gpt-neo", "gpt2", "gpt-neox", "llama", "mamba", "mamba2"]:
        family = get_family(name)
        assert family.name == name
        assert family_for_model_type(family.model_types[0]) is family
        assert family.has_attention == (name not in ("mamba", "mamba2"))
        assert (family.keys.max_length is None) == (not family.has_attention)


def test_registry_import_is_torch_free() -> None:
    """Every family's configs and shapes are torch-free; the six with formulas count without torch too
    (the others count on the meta device, which needs torch)."""
    code = (
        "import sys, hybridc.components.registry as r; fs = r.families(); "
        "configs = {n: f.init_config({'hidden_size': 32, 'layers': 2, 'heads': 4, 'vocab_size': 64}, {}) "
        "for n, f in fs.items()}; [fs[n].shape(c) for n, c in configs.items()]; "
        f"[fs[n].param_counts(configs[n]) for n in {list(CORE_FAMILIES)!r}]; "
        "leaked = [m for m in sys.modules if m.startswith(('torch', 'transformers'))]; "
        "assert not leaked, leaked[:5]"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


# ---- generated defaults ---------------------------------------------------------------------------


def load_generator():
    path = ROOT / "scripts" / "gen_family_defaults.py"
    spec = importlib.util.spec_from_file_location("gen_family_defaults", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_family_defaults_json_is_up_to_date() -> None:
    """Fails when transformers' defaults change: rerun scripts/gen_family_defaults.py and review."""
    generator = load_generator()
    committed = (ROOT / "hybridc" / "components" / "family_defaults.json").read_text()
    generated = generator.generate()
    assert json.loads(committed) == generated
    assert committed == generator.render(generated)


def test_readme_family_table_is_up_to_date() -> None:
    """The README's table of families is generated from the architecture table: rerun the script."""
    done = subprocess.run([sys.executable, "scripts/gen_family_table.py", "--check"], cwd=ROOT, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr


def test_every_architecture_is_a_family_of_its_transformers_class() -> None:
    """Each row names a class transformers has, whose config class reads the row's model type."""
    import transformers

    from hybridc.components.architectures import ARCHITECTURES

    for name, architecture in ARCHITECTURES.items():
        family = get_family(name)
        assert family.architecture is architecture and family.model_types == (architecture.model_type,)
        assert hasattr(transformers, architecture.model_class), architecture.model_class
        assert config_class(family).model_type == architecture.model_type


@pytest.mark.parametrize("name", FAMILIES)
def test_defaults_mean_what_the_config_class_means(name: str) -> None:
    """Building a config from the defaults alone gives the config class's own defaults."""
    family = get_family(name)
    config_cls = config_class(family)
    from_defaults = config_cls.from_dict(dict(family.defaults())).to_dict()
    plain = config_cls().to_dict()
    assert from_defaults == plain


# ---- init configs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FAMILIES)
def test_init_config_odd_sizes_build_and_run(name: str) -> None:
    family = get_family(name)
    config = family.init_config(
        {"hidden_size": 48, "layers": 3, "heads": 4, "vocab_size": 75, "max_length": 40}, {}
    )
    if family.config_problems(config):  # sizes the family cannot build: said at validate (test below)
        assert name in ("xlstm", "stablelm")
        return
    shape = family.shape(config)
    assert (shape.hidden_size, shape.num_layers, shape.vocab_size) == (48, 3, 75)
    assert shape.max_length == (40 if family.keys.max_length else None)
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        assert config.get(key) is None or 0 <= config[key] < 75
    model = build_model(family, config, seed=0).eval()
    ids = torch.randint(0, 75, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = model(ids).logits
    assert logits.shape == (2, 12, 75) and torch.isfinite(logits).all()
    assert family.param_counts(config).total == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(("name", "sizes", "message"), [
    ("xlstm", {"hidden_size": 48}, "hidden_size (48) * qk_dim_factor (0.5) = 24 must be a multiple of 64"),
    ("stablelm", {"hidden_size": 48}, "hidden/heads (12) * partial_rotary_factor (0.25) = 3 must be a multiple of 2"),
])
def test_sizes_a_family_cannot_build_are_named(name: str, sizes: dict, message: str) -> None:
    """Sizes whose model transformers cannot run are found from the config (torch-free), with the rule."""
    family = get_family(name)
    assert message in family.config_problems(tiny_config(name, **sizes))[0]
    assert family.config_problems(tiny_config(name)) == []


def test_init_config_derived_keys() -> None:
    common = {"hidden_size": 32, "layers": 3, "heads": 4, "vocab_size": 64}
    neo = get_family("gpt-neo").init_config(common, {})
    assert neo["attention_types"] == [[["global"], 3]] and neo["bos_token_id"] == 63
    assert get_family("gpt2").init_config(common, {})["resid_pdrop"] == 0.1  # family default kept
    assert get_family("gpt-neox").init_config(common, {})["intermediate_size"] == 128
    llama = get_family("llama").init_config(common, {})
    assert llama["intermediate_size"] == 128 and llama["num_key_value_heads"] == 4
    assert get_family("mamba").init_config(common, {})["intermediate_size"] == 64
    mamba2 = get_family("mamba2").init_config(common, {})
    assert mamba2["num_heads"] * mamba2["head_dim"] == mamba2["expand"] * 32
    assert mamba2["num_heads"] == 4 and mamba2["num_heads"] % mamba2["n_groups"] == 0


def test_init_config_extra_keys_win() -> None:
    common = {"hidden_size": 32, "layers": 2, "heads": 4, "vocab_size": 64}
    assert get_family("gpt-neox").init_config(common, {"intermediate_size": 40})["intermediate_size"] == 40
    assert get_family("llama").init_config(common, {"num_key_value_heads": 2})["num_key_value_heads"] == 2
    neo = get_family("gpt-neo").init_config(common, {"attention_types": [[["global", "local"], 1]]})
    assert neo["attention_types"] == [[["global", "local"], 1]]
    assert get_family("gpt2").init_config(common, {"eos_token_id": 5})["eos_token_id"] == 5
    no_heads = {k: v for k, v in common.items() if k != "heads"}
    mamba2 = get_family("mamba2").init_config(no_heads, {"head_dim": 8})
    assert (mamba2["num_heads"], mamba2["head_dim"]) == (8, 8)
    with pytest.raises(ValueError):
        get_family("mamba2").init_config({**common, "heads": 5}, {})


def test_known_keys_include_config_json_extras() -> None:
    assert "rotary_pct" in get_family("gpt-neox").known_keys()
    assert "intermediate_size" in get_family("mamba").known_keys()
    assert "head_dim" in get_family("llama").known_keys()


# ---- parameter counts -----------------------------------------------------------------------------


def count(params: set[nn.Parameter] | list[nn.Parameter]) -> int:
    return sum(p.numel() for p in params)


def unique(module: nn.Module) -> dict[int, nn.Parameter]:
    return {id(p): p for p in module.parameters()}


def measured_counts(family: Family, model: nn.Module) -> ParamCounts:
    """The split ParamCounts describes, measured on the model through its adapter."""
    adapter = load_adapter(family, model)
    layers = tuple(count(layer.parameters()) for layer in adapter.layers())
    n = len(layers)
    embedding = unique(adapter.embedding())
    head = unique(adapter.lm_head())
    first = unique(adapter.segment(0, 1))
    last = unique(adapter.segment(n - 1, n))
    if n == 1:
        position = final = None
        both = count(first.values()) - layers[0]
    else:
        position = count(first.values()) - layers[0]
        final = count(last.values()) - layers[-1]
        both = position + final
    result = ParamCounts(
        embedding=count(embedding.values()),
        position=position if position is not None else 0,
        layers=layers,
        final_norm=final if final is not None else both,
        head=0 if head.keys() <= embedding.keys() else count(head.values()),
    )
    assert result.total == sum(p.numel() for p in model.parameters())
    return result


def assert_counts_match(family: Family, config: dict[str, Any], model: nn.Module) -> None:
    expected = family.param_counts(config)
    measured = measured_counts(family, model)
    if len(measured.layers) == 1:  # position and final norm live in the same segment
        expected = ParamCounts(
            expected.embedding, 0, expected.layers, expected.position + expected.final_norm, expected.head
        )
    assert expected == measured
    assert expected.total == sum(p.numel() for p in model.parameters())


def divisors(n: int) -> list[int]:
    return [k for k in range(1, n + 1) if n % k == 0]


@st.composite
def attention_common(draw) -> dict[str, Any]:
    heads = draw(st.sampled_from([1, 2, 4]))
    return {
        "hidden_size": heads * draw(st.sampled_from([4, 6, 8])),
        "layers": draw(st.integers(1, 3)),
        "heads": heads,
        "vocab_size": draw(st.integers(17, 128)),
        "max_length": draw(st.sampled_from([8, 33, 64])),
    }


maybe_inner = st.sampled_from([None, 20, 72])


@st.composite
def gpt_neo_variant(draw):
    common = draw(attention_common())
    extra = {"tie_word_embeddings": draw(st.booleans())}
    if (inner := draw(maybe_inner)) is not None:
        extra["intermediate_size"] = inner
    if common["layers"] == 2 and draw(st.booleans()):
        extra["attention_types"] = [[["global", "local"], 1]]
    return common, extra


@st.composite
def gpt2_variant(draw):
    common = draw(attention_common())
    extra = {
        "tie_word_embeddings": draw(st.booleans()),
        "n_inner": draw(maybe_inner),
        "add_cross_attention": draw(st.booleans()),
    }
    return common, extra


@st.composite
def gpt_neox_variant(draw):
    common = draw(attention_common())
    extra = {"tie_word_embeddings": draw(st.booleans()), "attention_bias": draw(st.booleans())}
    if (inner := draw(maybe_inner)) is not None:
        extra["intermediate_size"] = inner
    return common, extra


@st.composite
def llama_variant(draw):
    common = draw(attention_common())
    extra = {
        "tie_word_embeddings": draw(st.booleans()),
        "attention_bias": draw(st.booleans()),
        "mlp_bias": draw(st.booleans()),
        "num_key_value_heads": draw(st.sampled_from(divisors(common["heads"]))),
    }
    if (inner := draw(maybe_inner)) is not None:
        extra["intermediate_size"] = inner
    if draw(st.booleans()):
        extra["head_dim"] = draw(st.sampled_from([4, 10]))
    return common, extra


@st.composite
def mamba_variant(draw):
    common = {
        "hidden_size": draw(st.sampled_from([8, 20, 32, 40])),
        "layers": draw(st.integers(1, 3)),
        "vocab_size": draw(st.integers(17, 128)),
    }
    extra = {
        "tie_word_embeddings": draw(st.booleans()),
        "use_bias": draw(st.booleans()),
        "use_conv_bias": draw(st.booleans()),
        "state_size": draw(st.sampled_from([4, 16])),
        "conv_kernel": draw(st.sampled_from([2, 4])),
        "expand": draw(st.sampled_from([1, 2])),
        "time_step_rank": draw(st.sampled_from(["auto", 3])),
    }
    if draw(st.booleans()):
        extra["intermediate_size"] = draw(st.sampled_from([24, 48]))
    return common, extra


@st.composite
def mamba2_variant(draw):
    hidden = draw(st.sampled_from([8, 16, 24, 32]))
    expand = draw(st.sampled_from([1, 2]))
    heads = draw(st.sampled_from([h for h in divisors(hidden * expand) if h <= 8]))
    common = {"hidden_size": hidden, "layers": draw(st.integers(1, 3)), "vocab_size": draw(st.integers(17, 128))}
    common["heads"] = heads
    extra = {
        "expand": expand,
        "tie_word_embeddings": draw(st.booleans()),
        "use_bias": draw(st.booleans()),
        "use_conv_bias": draw(st.booleans()),
        "state_size": draw(st.sampled_from([4, 16])),
        "n_groups": draw(st.sampled_from(divisors(heads))),
    }
    return common, extra


VARIANTS: dict[str, Callable[[], st.SearchStrategy]] = {
    "gpt-neo": gpt_neo_variant,
    "gpt2": gpt2_variant,
    "gpt-neox": gpt_neox_variant,
    "llama": llama_variant,
    "mamba": mamba_variant,
    "mamba2": mamba2_variant,
}


@pytest.mark.parametrize("name", FAMILIES)
def test_param_counts_tiny(name: str) -> None:
    family = get_family(name)
    config = tiny_config(name)
    assert_counts_match(family, config, build_model(family, config, seed=0))


@pytest.mark.parametrize("name", sorted(VARIANTS))
@HYPOTHESIS
@given(data=st.data())
def test_param_counts_variants(name: str, data: st.DataObject) -> None:
    family = get_family(name)
    common, extra = data.draw(VARIANTS[name](), label="common, extra")
    config = family.init_config(common, extra)
    assert_counts_match(family, config, build_model(family, config, seed=0))


@pytest.mark.parametrize("name", REPRESENTATIVE_FAMILIES)
def test_param_counts_of_saved_config_json(name: str, tiny_pretrained) -> None:
    """A checkpoint's own config.json (as the front end reads it) gives the loaded model's counts."""
    family = get_family(name)
    path = tiny_pretrained(name)
    config = read_config_json(path / "config.json")  # as the front end reads it
    assert_counts_match(family, config, load_pretrained(family, path))


# Minimal config.json dicts without the keys transformers derives (old checkpoints omit them).
PARTIAL_CONFIGS = {
    "gpt-neo": {"hidden_size": 24, "num_layers": 2, "num_heads": 2, "vocab_size": 40,
                "max_position_embeddings": 16, "attention_types": [[["global", "local"], 1]]},
    "gpt2": {"n_embd": 24, "n_layer": 2, "n_head": 2, "vocab_size": 40, "n_positions": 16},
    "gpt-neox": {"hidden_size": 24, "num_hidden_layers": 2, "num_attention_heads": 2, "vocab_size": 40,
                 "intermediate_size": 50, "rotary_pct": 0.5},
    "llama": {"hidden_size": 24, "num_hidden_layers": 2, "num_attention_heads": 2, "vocab_size": 40,
              "intermediate_size": 50},
    "mamba": {"hidden_size": 40, "num_hidden_layers": 2, "vocab_size": 40, "state_size": 4},
    "mamba2": {"hidden_size": 16, "num_hidden_layers": 2, "vocab_size": 40, "num_heads": 4, "head_dim": 8,
               "n_groups": 2, "state_size": 8},
}


@pytest.mark.parametrize("name", FORMULAS)
def test_param_counts_of_partial_config(name: str) -> None:
    family = get_family(name)
    config = PARTIAL_CONFIGS[name]
    assert_counts_match(family, config, build_model(family, config, seed=0))


# ---- FLOPs ----------------------------------------------------------------------------------------


def measured_layer_flops(family: Family, model: nn.Module, seq_len: int) -> tuple[float, dict[str, float]]:
    """FLOPs per token of layer 1 as torch's FlopCounterMode sees them: (total, by op)."""
    adapter = load_adapter(family, model)
    segment = adapter.segment(1, 2)
    h = torch.randn(2, seq_len, model.config.hidden_size)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        segment(h)
    tokens = 2 * seq_len
    by_op = {str(op): n / tokens for op, n in counter.get_flop_counts()["Global"].items()}
    return counter.get_total_flops() / tokens, by_op


@pytest.mark.parametrize("name", ["gpt-neo", "gpt2", "gpt-neox", "llama"])
@pytest.mark.parametrize("seq_len", [8, 24])
def test_attention_layer_flops_exact(name: str, seq_len: int) -> None:
    """With eager attention every FLOP is a matmul torch counts: the formula is exact."""
    family = get_family(name)
    extra = {"num_key_value_heads": 2} if name == "llama" else {}
    config = tiny_config(name, **extra)
    model = build_model(family, config, seed=0).eval()
    model.set_attn_implementation("eager")
    total, _ = measured_layer_flops(family, model, seq_len)
    assert family.layer_flops_per_token(config, seq_len) == total


@pytest.mark.parametrize("name", ["mamba", "mamba2"])
def test_recurrent_layer_flops_estimate(name: str) -> None:
    """Projections are counted exactly; the scan estimate does not depend on the context length."""
    family = get_family(name)
    config = tiny_config(name)
    model = build_model(family, config, seed=0).eval()
    flops = family.layer_flops_per_token(config, 16)
    assert flops == family.layer_flops_per_token(config, 1024)
    _, by_op = measured_layer_flops(family, model, 16)
    projections = by_op.get("aten.mm", 0) + by_op.get("aten.addmm", 0)
    assert projections < flops < 2 * projections


@pytest.mark.parametrize("name", FAMILIES)
def test_layer_flops_positive_integers(name: str) -> None:
    family = get_family(name)
    config = tiny_config(name)
    values = [family.layer_flops_per_token(config, t) for t in (1, 64, 1024)]
    assert all(isinstance(v, int) and v > 0 for v in values)
    if family.has_attention and not (family.architecture and family.architecture.recurrent):
        # attention only: the scores grow with the context (chunked recurrent algorithms pad short inputs
        # to a chunk, so a hybrid's per-token cost need not grow at tiny lengths)
        assert values[0] < values[1] < values[2]


# ---- decode state -------------------------------------------------------------------------------------------
def _cached_numbers(model: nn.Module, seq_len: int) -> list[int] | None:
    """Per layer, the numbers transformers' own model keeps in its cache after a prefill of ``seq_len``
    tokens on the CPU (None when its cache is not a list of layers)."""
    from hybridc.components.meta_cost import _tensors_in

    with torch.no_grad():
        out = model(input_ids=torch.ones(1, seq_len, dtype=torch.long), use_cache=True)
    cache = getattr(out, "past_key_values", None) or getattr(out, "cache_params", None)
    cache = getattr(cache, "self_attention_cache", cache)  # (GPT-2 with cross-attention: no encoder, none cached)
    layers = getattr(cache, "layers", None)
    if not isinstance(layers, (list, tuple)):
        return None
    return [sum(t.numel() for v in vars(layer).values() for t in _tensors_in(v)) for layer in layers]


# Families whose decode state hybridc does not know (reported as unknown; a decode_state budget is refused):
# expert routers cannot run on the meta device, and these keep their state outside transformers' cache layers.
STATE_UNKNOWN = {"granitemoehybrid", "jamba", "nemotron-h", "qwen3-next", "recurrent-gemma", "rwkv", "xlstm"}


@pytest.mark.parametrize("name", FAMILIES)
def test_decode_state_is_what_transformers_caches(name: str) -> None:
    """``layers_decode_state`` (formulas for Mamba and Mamba2, the meta-device measurement for the rest)
    against the cache of the family's own model after a real prefill, at two context lengths."""
    family = get_family(name)
    config = tiny_config(name)
    model = build_model(family, config, seed=0).eval()
    for seq_len in (9, 20):
        predicted = family.layers_decode_state(config, seq_len)
        assert len(predicted) == family.shape(config).num_layers
        if name in STATE_UNKNOWN:
            assert None in predicted
            continue
        assert _cached_numbers(model, seq_len) == list(predicted)


@pytest.mark.parametrize("name", sorted(VARIANTS))
@HYPOTHESIS
@given(data=st.data())
def test_decode_state_formulas_of_config_variants(name: str, data: st.DataObject) -> None:
    """The built-in families' formulas (torch-free) against a real prefill, over drawn configs
    (grouped-query heads, head widths, inner widths, state sizes, local attention)."""
    family = get_family(name)
    common, extra = data.draw(VARIANTS[name](), label="common, extra")
    config = family.init_config(common, extra)
    seq_len = data.draw(st.integers(1, min(24, common.get("max_length") or 24)), label="seq_len")
    model = build_model(family, config, seed=0).eval()
    assert _cached_numbers(model, seq_len) == list(family.layers_decode_state(config, seq_len))

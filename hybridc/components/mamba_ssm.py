"""Checkpoints in mamba-ssm's own layout, read as transformers' Mamba and Mamba2 (torch-free).

state-spaces' ``mamba-*`` and ``mamba2-*`` (the paper's components; Mamba-2 has no transformers-format
release) hold a ``config.json`` of mamba-ssm's ``MambaConfig`` (``d_model``, ``n_layer``, ``vocab_size``,
``ssm_cfg``, ``rms_norm``, ``residual_in_fp32``, ``fused_add_norm``, ``pad_vocab_size_multiple``, and in
mamba-ssm 2 ``d_intermediate``, ``attn_layer_idx``, ``attn_cfg``, ``tie_embeddings``; no ``model_type``) and
their weights in ``pytorch_model.bin``. This module recognizes that config and translates it into the
config.json of transformers' ``MambaForCausalLM`` (``ssm_cfg.layer`` absent or ``Mamba1``) or
``Mamba2ForCausalLM`` (``Mamba2``), or says, key by key, why a model of it cannot be one: every value is
checked before any weight is read. The weights' names need one change (``backbone.embedding.`` ->
``backbone.embeddings.``: ``WEIGHT_RENAMES``); the torch side is ``hybridc.components.mamba_ssm_checkpoint``.

The translation is transformers' own conversion scripts' (``models/mamba/convert_mamba_ssm_checkpoint_to_
pytorch.py``, ``models/mamba2/convert_mamba2_ssm_checkpoint_to_pytorch.py``): width, layers, the vocabulary
padded up to ``pad_vocab_size_multiple`` as mamba-ssm pads it, ``residual_in_fp32``, ``tie_embeddings`` ->
``tie_word_embeddings``, ``time_step_rank = ceil(d_model / 16)``, special tokens 0 (GPT-NeoX's
``<|endoftext|>``). Where the scripts take transformers' defaults for the mixer (``expand=2``,
``d_state``, ``headdim``, ``ngroups``, ...), which are mamba-ssm's defaults for the values state-spaces'
releases leave out, the values of ``ssm_cfg`` are read instead, with mamba-ssm's defaults (Mamba2's
``ngroups`` is 1 there, 8 in transformers' config): the same config for those releases, and the right
one for a checkpoint that sets them. What transformers' classes cannot express is refused: attention
layers (``attn_layer_idx``), MLP blocks (``d_intermediate``), LayerNorm in place of RMSNorm, and the
Mamba-2 mixer variants (``d_ssm``, ``D_has_hdim``, no gated norm, norm before the gate).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

LAYOUT = "mamba-ssm"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # in order of preference (safetensors loads no pickle)
WEIGHT_RENAMES = (("backbone.embedding.", "backbone.embeddings."),)  # mamba-ssm name prefix -> transformers'
NORM_EPSILON = 1e-5  # mamba-ssm's MixerModel norm_epsilon (not in its config)

# mamba-ssm's MambaConfig fields and their defaults (mamba_ssm/models/config_mamba.py)
TOP_DEFAULTS: Mapping[str, Any] = {
    "d_model": None, "d_intermediate": 0, "n_layer": None, "vocab_size": None, "ssm_cfg": {}, "attn_layer_idx": [],
    "attn_cfg": {}, "rms_norm": True, "residual_in_fp32": True, "fused_add_norm": True, "pad_vocab_size_multiple": 8,
    "tie_embeddings": True,
}


@dataclass(frozen=True)
class _Key:
    """One ``ssm_cfg`` key of a mixer: its mamba-ssm default, the transformers config key it becomes (None:
    it changes nothing the model computes from its weights: an initialisation or kernel choice), and what
    it may be."""

    default: Any
    target: str | None
    kind: str  # "size", "number", "bool", "rank", "dt_init", "limit", "pair", "any"


MAMBA1_KEYS: Mapping[str, _Key] = {  # mamba_ssm/modules/mamba_simple.py: Mamba.__init__
    "d_state": _Key(16, "state_size", "size"),
    "d_conv": _Key(4, "conv_kernel", "size"),
    "expand": _Key(2, "expand", "number"),
    "dt_rank": _Key("auto", "time_step_rank", "rank"),
    "dt_min": _Key(0.001, "time_step_min", "number"),
    "dt_max": _Key(0.1, "time_step_max", "number"),
    "dt_init": _Key("random", "time_step_init_scheme", "dt_init"),
    "dt_scale": _Key(1.0, "time_step_scale", "number"),
    "dt_init_floor": _Key(1e-4, "time_step_floor", "number"),
    "conv_bias": _Key(True, "use_conv_bias", "bool"),
    "bias": _Key(False, "use_bias", "bool"),
    "use_fast_path": _Key(True, None, "bool"),
}

MAMBA2_KEYS: Mapping[str, _Key] = {  # mamba_ssm/modules/mamba2.py: Mamba2.__init__
    "d_state": _Key(128, "state_size", "size"),
    "d_conv": _Key(4, "conv_kernel", "size"),
    "conv_init": _Key(None, None, "any"),
    "expand": _Key(2, "expand", "size"),
    "headdim": _Key(64, "head_dim", "size"),
    "d_ssm": _Key(None, None, "any"),  # checked below: only the whole inner width
    "ngroups": _Key(1, "n_groups", "size"),
    "A_init_range": _Key([1, 16], None, "pair"),
    "D_has_hdim": _Key(False, None, "bool"),
    "rmsnorm": _Key(True, None, "bool"),
    "norm_before_gate": _Key(False, None, "bool"),
    "dt_min": _Key(0.001, "time_step_min", "number"),
    "dt_max": _Key(0.1, "time_step_max", "number"),
    "dt_init_floor": _Key(1e-4, "time_step_floor", "number"),
    "dt_limit": _Key([0.0, float("inf")], "time_step_limit", "limit"),
    "bias": _Key(False, "use_bias", "bool"),
    "conv_bias": _Key(True, "use_conv_bias", "bool"),
    "chunk_size": _Key(256, "chunk_size", "size"),
    "use_mem_eff_path": _Key(True, None, "bool"),
    "sequence_parallel": _Key(True, None, "bool"),
    "process_group": _Key(None, None, "any"),
}

LAYERS = {"Mamba1": ("mamba", "MambaForCausalLM", MAMBA1_KEYS), "Mamba2": ("mamba2", "Mamba2ForCausalLM", MAMBA2_KEYS)}


@dataclass(frozen=True)
class Problem:
    """Why a mamba-ssm config cannot be read as a transformers model: the key (``ssm_cfg.d_state``), what is
    wrong, and what to do."""

    key: str
    message: str
    hint: str | None = None


def recognizes(config: Mapping[str, Any]) -> bool:
    """``config`` (a config.json dict) is mamba-ssm's: no ``model_type``, and ``d_model`` and ``n_layer``."""
    return "model_type" not in config and "d_model" in config and "n_layer" in config


def _size(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check(kind: str, value: Any) -> str | None:
    """What ``value`` must be for ``kind``, when it is not; None when it is fine."""
    if kind == "size":
        return None if _size(value) else "a positive whole number"
    if kind == "number":
        return None if _number(value) and value > 0 else "a positive number"
    if kind == "bool":
        return None if isinstance(value, bool) else "true or false"
    if kind == "rank":
        return None if value == "auto" or _size(value) else '"auto" or a positive whole number'
    if kind == "dt_init":
        return None if value in ("random", "constant") else '"random" or "constant"'
    if kind in ("limit", "pair"):
        ok = isinstance(value, (list, tuple)) and len(value) == 2 and all(_number(v) for v in value)
        return None if ok and value[0] <= value[1] else "a pair of numbers [low, high]"
    return None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def to_transformers(config: Mapping[str, Any]) -> tuple[dict[str, Any] | None, list[Problem]]:
    """The transformers config.json dict (``model_type`` mamba or mamba2) of a mamba-ssm ``config``, or None and
    every problem found (each key checked, not only the first wrong one)."""
    problems: list[Problem] = []
    for key in config:
        if key not in TOP_DEFAULTS:
            problems.append(Problem(key, f"unknown key '{key}' in a mamba-ssm config.json",
                                    f"mamba-ssm's MambaConfig has {', '.join(TOP_DEFAULTS)}"))
    values = {key: config.get(key, default) for key, default in TOP_DEFAULTS.items()}
    for key in ("d_model", "n_layer", "vocab_size", "pad_vocab_size_multiple"):
        if key not in config and TOP_DEFAULTS[key] is None:
            problems.append(Problem(key, f"'{key}' is missing", "a mamba-ssm config.json names it"))
        elif not _size(values[key]):
            problems.append(Problem(key, f"'{key}' is {_shown(values[key])}; it must be a positive whole number"))
    for key in ("rms_norm", "residual_in_fp32", "fused_add_norm", "tie_embeddings"):
        if not isinstance(values[key], bool):
            problems.append(Problem(key, f"'{key}' is {_shown(values[key])}; it must be true or false"))
    if values["rms_norm"] is False:
        problems.append(Problem("rms_norm", "'rms_norm' is false: its blocks use LayerNorm, which transformers' "
                                "Mamba and Mamba2 do not have (they use RMSNorm)",
                                "convert the checkpoint to a family with LayerNorm, or use one with rms_norm: true"))
    if values["d_intermediate"] != 0:
        problems.append(Problem("d_intermediate", f"'d_intermediate' is {_shown(values['d_intermediate'])}: its "
                                "blocks have an MLP after the mixer, which transformers' Mamba and Mamba2 do not have",
                                "only checkpoints with d_intermediate: 0 (state-spaces' mamba-* and mamba2-*) load"))
    if values["attn_layer_idx"] not in ([], None, ()):
        problems.append(Problem("attn_layer_idx", f"'attn_layer_idx' is {_shown(values['attn_layer_idx'])}: its "
                                "attention layers (a mamba2attn model) have no transformers class",
                                "only checkpoints without attention layers load"))
    if not isinstance(values["attn_cfg"], dict):
        problems.append(Problem("attn_cfg", f"'attn_cfg' is {_shown(values['attn_cfg'])}; it must be a mapping"))
    ssm = values["ssm_cfg"]
    if ssm is None:
        ssm = {}
    if not isinstance(ssm, dict):
        problems.append(Problem("ssm_cfg", f"'ssm_cfg' is {_shown(ssm)}; it must be a mapping"))
        return None, problems
    layer = ssm.get("layer", "Mamba1")
    if layer not in LAYERS:
        problems.append(Problem("ssm_cfg.layer", f"'ssm_cfg.layer' is {_shown(layer)}; mamba-ssm's layers are "
                                "Mamba1 and Mamba2", "use layer: Mamba1 or layer: Mamba2"))
        return None, problems
    model_type, model_class, keys = LAYERS[layer]
    mixer: dict[str, Any] = {}
    for key, value in ssm.items():
        if key == "layer":
            continue
        spec = keys.get(key)
        if spec is None:
            problems.append(Problem(f"ssm_cfg.{key}", f"unknown key 'ssm_cfg.{key}' for a {layer} mixer",
                                    f"mamba-ssm's {layer} takes {', '.join(keys)}"))
            continue
        wanted = _check(spec.kind, value)
        if wanted is not None:
            problems.append(Problem(f"ssm_cfg.{key}", f"'ssm_cfg.{key}' is {_shown(value)}; it must be {wanted}"))
            continue
        mixer[key] = value
    for key, spec in keys.items():
        mixer.setdefault(key, spec.default)
    if layer == "Mamba2":
        problems += _mamba2_problems(mixer, values["d_model"])
    if problems:
        return None, problems
    return _translated(values, mixer, model_type, model_class, keys), []


def _mamba2_problems(mixer: Mapping[str, Any], d_model: Any) -> list[Problem]:
    """The Mamba-2 mixer variants transformers' Mamba2 cannot run, and heads that do not divide its width."""
    problems = []
    supported = (("D_has_hdim", False, "a skip D per channel (transformers' Mamba2 has one per head)"),
                 ("rmsnorm", True, "no gated RMSNorm before out_proj (transformers' Mamba2 always has one)"),
                 ("norm_before_gate", False, "the norm before the gate (transformers' Mamba2 gates first)"),
                 ("process_group", None, "a tensor-parallel process group"))
    for key, default, what in supported:
        value = mixer[key]
        if value != default:
            problems.append(Problem(f"ssm_cfg.{key}", f"'ssm_cfg.{key}' is {_shown(value)}: {what}",
                                    f"only checkpoints with mamba-ssm's default {key} load"))
    if not _size(d_model) or not _number(mixer["expand"]):
        return problems
    inner = int(mixer["expand"] * d_model)
    if mixer["d_ssm"] is not None and mixer["d_ssm"] != inner:
        problems.append(Problem("ssm_cfg.d_ssm", f"'ssm_cfg.d_ssm' is {_shown(mixer['d_ssm'])}: an SSM on part of "
                                f"the inner width ({inner}) and a gated MLP on the rest, which transformers' Mamba2 "
                                "does not have", "only checkpoints with d_ssm: null load"))
    head_dim, groups = mixer["headdim"], mixer["ngroups"]
    if _size(head_dim) and inner % head_dim:
        problems.append(Problem("ssm_cfg.headdim", f"the inner width expand * d_model = {inner} is not divisible by "
                                f"'ssm_cfg.headdim' {head_dim}"))
    elif _size(head_dim) and _size(groups) and (inner // head_dim) % groups:
        problems.append(Problem("ssm_cfg.ngroups", f"its {inner // head_dim} heads are not divisible by "
                                f"'ssm_cfg.ngroups' {groups}"))
    return problems


def _translated(values: Mapping[str, Any], mixer: Mapping[str, Any], model_type: str, model_class: str,
                keys: Mapping[str, _Key]) -> dict[str, Any]:
    vocab, multiple = values["vocab_size"], values["pad_vocab_size_multiple"]
    if vocab % multiple:
        vocab += multiple - vocab % multiple  # as MambaLMHeadModel pads it: the weights' rows
    d_model = values["d_model"]
    config: dict[str, Any] = {
        "model_type": model_type,
        "architectures": [model_class],
        "hidden_size": d_model,
        "num_hidden_layers": values["n_layer"],
        "vocab_size": vocab,
        "residual_in_fp32": values["residual_in_fp32"],
        "tie_word_embeddings": values["tie_embeddings"],
        "layer_norm_epsilon": NORM_EPSILON,
        "pad_token_id": 0, "bos_token_id": 0, "eos_token_id": 0,
    }
    for key, spec in keys.items():
        if spec.target is not None:
            value = mixer[key]
            config[spec.target] = list(value) if isinstance(value, tuple) else value
    if model_type == "mamba":
        config["intermediate_size"] = int(mixer["expand"] * d_model)
        if config["time_step_rank"] == "auto":
            config["time_step_rank"] = -(-d_model // 16)  # ceil(d_model / 16), as both libraries compute it
    else:
        config["num_heads"] = int(mixer["expand"] * d_model) // mixer["headdim"]
    return config

"""Every decoder family hybridc runs, described as data (torch-free).

One ``Architecture`` per transformers ``model_type``: where the parts of its ``*ForCausalLM`` live and
the few things its forward does that cannot be read from the model itself. Everything else -- masks per
layer type, rotary tables, positions, per-layer cache handling, whatever else a family's model forward
hands its layers -- is taken from the family's own forward at run time
(``hybridc.components.adapters.decoder``), so a family needs an entry here and nothing more.

Most families share one layout, ``model.embed_tokens -> model.layers -> model.norm -> lm_head``, which
is every field's default; an entry names only its differences. The fields:

- ``base`` / ``embedding`` / ``layers`` / ``final_norm`` / ``head``: attribute paths (``base`` on the
  ``*ForCausalLM``, the next three on the base model, ``head`` on the ``*ForCausalLM``).
- ``start``: what the family's forward does to the embeddings before the first layer, in order; the
  segment that starts at layer 0 does it (DESIGN: a component's own pre-work lives in its segment).
  ``("positions", attr)`` adds ``attr(position_ids)``; ``("module", attr)`` applies a module (dropout);
  ``("dropout", key)`` is dropout with probability ``config[key]`` (in training);
  ``("scale", key)`` multiplies by ``config[key]``; ``("scale_sqrt_width", dtype)`` by sqrt(hidden size)
  rounded to ``dtype`` (RecurrentGemma's normalizer).
- ``logits``: what the ``*ForCausalLM`` does to the head's output: ``("softcap", key)`` is
  ``c * tanh(x / c)``, ``("scale", key)`` multiplies, ``("divide", key)`` divides (skipped when the
  config value is null).
- ``layer_output``: "tuple" when the family's loop unpacks its layers' output (``h, *rest = layer(...)``);
  ``cache_argument``: the name of its base model forward's cache argument.
- ``runner``: how segments run their layers: ``recorded`` (the generic way: the layers' arguments are
  those the family's own model forward computes), ``mamba`` / ``mamba2`` (hybridc's fast paths),
  ``rwkv`` / ``xlstm`` (families whose model forward threads a state through its loop).
- ``layer_kinds``: what kinds of mixer its layers hold (attention, recurrent); ``max_length``: whether
  its context is bounded (a learned position table, or a rotary ``max_position_embeddings``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from .family import ConfigKeys

STANDARD_KEYS = ConfigKeys(
    hidden="hidden_size",
    layers="num_hidden_layers",
    vocab="vocab_size",
    heads="num_attention_heads",
    max_length="max_position_embeddings",
)
RECURRENT_KEYS = ConfigKeys(hidden="hidden_size", layers="num_hidden_layers", vocab="vocab_size")


@dataclass(frozen=True)
class Architecture:
    """How one transformers decoder family is laid out (see the module doc for each field)."""

    model_type: str
    model_class: str  # the transformers class name, e.g. "Qwen3ForCausalLM"
    family: str = ""  # the name specs use (``init: {family: ...}``); default: model_type with '-' for '_'
    base: str = "model"
    embedding: str = "embed_tokens"
    layers: str = "layers"
    final_norm: str = "norm"
    head: str = "lm_head"
    start: tuple[tuple[str, str], ...] = ()
    logits: tuple[tuple[str, str], ...] = ()
    runner: str = "recorded"
    layer_output: str = "tensor"  # what a layer returns: "tensor", or "tuple" led by the hidden state
    cache_argument: str = "past_key_values"  # the base model forward's cache argument
    # the padding-mask columns its forward takes with a cache: "all" (past + new, as masking_utils reads them)
    # or "new" (FalconMamba multiplies its states by the mask as given; its own generate drops the mask
    # after the prompt, and the columns of the new tokens are all ones)
    mask_columns: str = "all"
    keys: ConfigKeys = STANDARD_KEYS
    padding: bool = True  # its forward reads a padding mask (RWKV and xLSTM read none: left padding is not exact)
    fresh_state: str = ""  # a base-model method that resets states its modules keep, called as a cache starts
    # sizes its layers can only build with: ((factors, m), ...) -- the product of the config values named by
    # factors must be a whole multiple of m ("hidden/heads" is the width per head, "a.b=v" is key b of the
    # mapping a, v when absent)
    multiple_of: tuple[tuple[tuple[str, ...], int], ...] = ()
    ties: bool = True  # the head can be tied to the embedding (``tie_word_embeddings``); False: never is
    attention: bool = True  # some layer attends over the context (its cost grows with T)
    recurrent: bool = False  # some layer keeps a recurrent state (Mamba, conv, linear attention, ...)
    # keys of a small from-scratch config derived from the common sizes unless the user gives them
    # (see ``hybridc.components.families.generic``): name -> rule
    init: Mapping[str, str] = field(default_factory=dict)
    note: str = ""  # what the README's family table says beside it

    @property
    def name(self) -> str:
        return self.family or self.model_type.replace("_", "-")

    @property
    def state_outside_cache(self) -> bool:
        """Its decoding state is kept outside transformers' cache layers (RWKV's and xLSTM's state threaded
        through their loops, RecurrentGemma's in its modules), so no prefill on the meta device measures it."""
        return self.runner in ("rwkv", "xlstm") or bool(self.fresh_state)


def _table(*entries: Architecture) -> Mapping[str, Architecture]:
    return MappingProxyType({a.name: a for a in entries})


# Rules for small configs (``init`` above), read by ``families.generic``:
#   "ffn"          4 * hidden (an MLP inner width; the config defaults are the large model's)
#   "heads"        the common heads (e.g. key/value heads = query heads)
#   "head_dim"     hidden / heads
#   "layer_types"  the config's own layer-type pattern, cut or repeated to the layer count
#   "cycle:a,b"    the layer kinds a, b, a, b, ... to the layer count
#   "half"         hidden / 2, "quarter" hidden / 4
#   a number       that number
_ATTN = {"intermediate_size": "ffn", "num_key_value_heads": "heads", "head_dim": "head_dim"}


ARCHITECTURES: Mapping[str, Architecture] = _table(
    # ---- the common layout: model.{embed_tokens, layers, norm, rotary_emb}, lm_head ----
    Architecture("llama", "LlamaForCausalLM", init=_ATTN),
    Architecture("internlm3", "LlamaForCausalLM", init=_ATTN, note="runs as Llama (transformers maps it so)"),
    Architecture("mistral", "MistralForCausalLM", init=_ATTN),
    Architecture("ministral", "MinistralForCausalLM", init={**_ATTN, "layer_types": "layer_types"}),
    Architecture("qwen2", "Qwen2ForCausalLM", init={**_ATTN, "layer_types": "layer_types"}),
    Architecture("qwen3", "Qwen3ForCausalLM", init={**_ATTN, "layer_types": "layer_types"}),
    Architecture("gemma", "GemmaForCausalLM", init=_ATTN, note="embeddings scaled by sqrt(d) inside the embedding"),
    Architecture("gemma2", "Gemma2ForCausalLM", logits=(("softcap", "final_logit_softcapping"),),
                 init={**_ATTN, "layer_types": "layer_types"}, note="logit soft-capping; sliding and full layers"),
    Architecture("gemma3_text", "Gemma3ForCausalLM", family="gemma3", logits=(("softcap", "final_logit_softcapping"),),
                 init={**_ATTN, "layer_types": "layer_types"}, note="rotary per layer type"),
    Architecture("phi", "PhiForCausalLM", final_norm="final_layernorm", start=(("module", "embed_dropout"),),
                 init={"intermediate_size": "ffn"}),
    Architecture("phi3", "Phi3ForCausalLM", init=_ATTN),
    Architecture("olmo", "OlmoForCausalLM", init=_ATTN),
    Architecture("olmo2", "Olmo2ForCausalLM", init=_ATTN),
    Architecture("olmo3", "Olmo3ForCausalLM", init={**_ATTN, "layer_types": "layer_types"}),
    Architecture("granite", "GraniteForCausalLM", start=(("scale", "embedding_multiplier"),),
                 logits=(("divide", "logits_scaling"),), init=_ATTN, note="embedding multiplier, logit scaling"),
    Architecture("smollm3", "SmolLM3ForCausalLM", init={**_ATTN, "layer_types": "layer_types"}),
    Architecture("stablelm", "StableLmForCausalLM", init=_ATTN,
                 multiple_of=((("hidden/heads", "rope_parameters.partial_rotary_factor=0.25"), 2),)),
    Architecture("starcoder2", "Starcoder2ForCausalLM", start=(("dropout", "embedding_dropout"),), init=_ATTN),
    Architecture("cohere", "CohereForCausalLM", logits=(("scale", "logit_scale"),), init=_ATTN,
                 note="parallel attention and MLP; logit scale"),
    Architecture("exaone4", "Exaone4ForCausalLM", init={**_ATTN, "layer_types": "layer_types"}),
    Architecture("seed_oss", "SeedOssForCausalLM", init=_ATTN),
    Architecture("apertus", "ApertusForCausalLM", init=_ATTN),
    Architecture("arcee", "ArceeForCausalLM", init=_ATTN),
    Architecture("hunyuan_v1_dense", "HunYuanDenseV1ForCausalLM", family="hunyuan-dense", init=_ATTN),
    Architecture("glm4", "Glm4ForCausalLM", init=_ATTN),
    # ---- older layouts ----
    Architecture("gpt2", "GPT2LMHeadModel", base="transformer", embedding="wte", layers="h", final_norm="ln_f",
                 start=(("positions", "wpe"), ("module", "drop")),
                 keys=ConfigKeys(hidden="n_embd", layers="n_layer", vocab="vocab_size", heads="n_head",
                                 max_length="n_positions")),
    Architecture("gpt_neo", "GPTNeoForCausalLM", layer_output="tuple", base="transformer", embedding="wte", layers="h", final_norm="ln_f",
                 start=(("positions", "wpe"), ("module", "drop")),
                 keys=ConfigKeys(hidden="hidden_size", layers="num_layers", vocab="vocab_size", heads="num_heads",
                                 max_length="max_position_embeddings")),
    Architecture("gptj", "GPTJForCausalLM", layer_output="tuple", base="transformer", embedding="wte", layers="h", final_norm="ln_f",
                 start=(("module", "drop"),),
                 keys=ConfigKeys(hidden="n_embd", layers="n_layer", vocab="vocab_size", heads="n_head",
                                 max_length="n_positions"), init={"rotary_dim": "head_dim"}),
    Architecture("gpt_neox", "GPTNeoXForCausalLM", base="gpt_neox", embedding="embed_in",
                 final_norm="final_layer_norm", start=(("module", "emb_dropout"),),
                 init={"intermediate_size": "ffn"}),
    Architecture("falcon", "FalconForCausalLM", layer_output="tuple", base="transformer", embedding="word_embeddings", layers="h",
                 final_norm="ln_f", init={"num_kv_heads": "heads"}, note="alibi or rotary"),
    # ---- recurrent ----
    Architecture("mamba", "MambaForCausalLM", base="backbone", embedding="embeddings", final_norm="norm_f",
                 runner="mamba", keys=RECURRENT_KEYS, attention=False, recurrent=True,
                 note="hybridc's fused CPU scan"),
    Architecture("mamba2", "Mamba2ForCausalLM", base="backbone", embedding="embeddings", final_norm="norm_f",
                 runner="mamba2", keys=ConfigKeys(hidden="hidden_size", layers="num_hidden_layers",
                                                  vocab="vocab_size", heads="num_heads"),
                 attention=False, recurrent=True),
    Architecture("falcon_mamba", "FalconMambaForCausalLM", cache_argument="cache_params", mask_columns="new", base="backbone", embedding="embeddings",
                 final_norm="norm_f", keys=RECURRENT_KEYS, attention=False, recurrent=True,
                 init={"intermediate_size": "double", "time_step_rank": "sixteenth"}),
    Architecture("rwkv", "RwkvForCausalLM", base="rwkv", embedding="embeddings", layers="blocks",
                 final_norm="ln_out", head="head", runner="rwkv", padding=False,
                 keys=ConfigKeys(hidden="hidden_size", layers="num_hidden_layers", vocab="vocab_size",
                                 heads="num_attention_heads"),
                 attention=False, recurrent=True, init={"attention_hidden_size": "same", "intermediate_size": "ffn"},
                 note="a batch's one-token steps run row by row (the family's own step is right for one row)"),
    Architecture("xlstm", "xLSTMForCausalLM", base="backbone", embedding="embeddings", layers="blocks",
                 final_norm="out_norm", runner="xlstm", ties=False, padding=False,
                 multiple_of=((("hidden_size", "qk_dim_factor"), 64), (("hidden_size", "v_dim_factor"), 64)), cache_argument="cache_params", logits=(("softcap", "output_logit_soft_cap"),),
                 keys=ConfigKeys(hidden="hidden_size", layers="num_hidden_layers", vocab="vocab_size",
                                 heads="num_heads"),
                 attention=False, recurrent=True),
    Architecture("recurrent_gemma", "RecurrentGemmaForCausalLM", final_norm="final_norm", fresh_state="_setup_cache",
                 start=(("scale_sqrt_width", "bfloat16"),), logits=(("softcap", "logits_soft_cap"),),
                 keys=ConfigKeys(hidden="hidden_size", layers="num_hidden_layers", vocab="vocab_size",
                                 heads="num_attention_heads"),
                 recurrent=True, init={"intermediate_size": "ffn", "lru_width": "same", "num_key_value_heads": "heads",
                                       "head_dim": "head_dim"},
                 note="RG-LRU; its states live in its modules, so generation is greedy or sampled (no beam "
                      "search); several tokens after a filled cache read as a new prompt, as in the family"),
    # ---- hybrids: attention and recurrent layers in one model ----
    Architecture("bamba", "BambaForCausalLM", layer_output="tuple", final_norm="final_layernorm", recurrent=True,
                 init={**_ATTN, "mamba_n_heads": "heads", "mamba_d_head": "double_head_dim", "mamba_n_groups": 1,
                       "attn_layer_indices": "every_second"}),
    Architecture("jamba", "JambaForCausalLM", final_norm="final_layernorm", recurrent=True,
                 init={"intermediate_size": "ffn", "num_key_value_heads": "heads", "attn_layer_period": 2,
                       "attn_layer_offset": 1, "expert_layer_period": 2, "expert_layer_offset": 1,
                       "mamba_dt_rank": "sixteenth"}),
    Architecture("zamba2", "Zamba2ForCausalLM", final_norm="final_layernorm", recurrent=True,
                 init={"intermediate_size": "ffn", "num_key_value_heads": "heads", "attention_head_dim": "double_head_dim",
                       "mamba_headdim": "head_dim", "n_mamba_heads": "double_heads", "mamba_ngroups": 1,
                       "layers_block_type": "zamba_layers"},
                 note="shared attention blocks read the hybrid's embeddings"),
    Architecture("falcon_h1", "FalconH1ForCausalLM", layer_output="tuple", final_norm="final_layernorm",
                 start=(("scale", "embedding_multiplier"),), logits=(("scale", "lm_head_multiplier"),),
                 recurrent=True,
                 init={**_ATTN, "mamba_n_heads": "heads", "mamba_d_head": "double_head_dim", "mamba_n_groups": 1,
                       "mamba_d_ssm": "double"},
                 note="attention and Mamba-2 in parallel in every layer"),
    Architecture("lfm2", "Lfm2ForCausalLM", final_norm="embedding_norm", recurrent=True,
                 init={"intermediate_size": "ffn", "num_key_value_heads": "heads", "layer_types": "layer_types"},
                 note="short convolutions and attention"),
    Architecture("nemotron_h", "NemotronHForCausalLM", embedding="embeddings", final_norm="norm_f", recurrent=True,
                 ties=False,
                 init={"intermediate_size": "ffn", "num_key_value_heads": "heads", "head_dim": "head_dim",
                       "mamba_num_heads": "heads", "mamba_head_dim": "double_head_dim", "n_groups": 1,
                       "moe_intermediate_size": "ffn", "moe_shared_expert_intermediate_size": "ffn",
                       "layers_block_type": "cycle:linear_attention,moe,full_attention,mlp"}),
    Architecture("qwen3_next", "Qwen3NextForCausalLM", recurrent=True,
                 init={**_ATTN, "layer_types": "cycle:linear_attention,full_attention", "linear_num_key_heads": "heads",
                       "linear_num_value_heads": "heads", "linear_key_head_dim": "head_dim",
                       "linear_value_head_dim": "head_dim", "moe_intermediate_size": "ffn",
                       "shared_expert_intermediate_size": "ffn", "num_experts": 4, "num_experts_per_tok": 2},
                 note="gated delta-net and attention, mixture of experts"),
    Architecture("granitemoehybrid", "GraniteMoeHybridForCausalLM", start=(("scale", "embedding_multiplier"),),
                 logits=(("divide", "logits_scaling"),), recurrent=True,
                 init={"intermediate_size": "ffn", "num_key_value_heads": "heads", "mamba_n_heads": "heads",
                       "mamba_d_head": "double_head_dim", "mamba_n_groups": 1,
                       "layer_types": "cycle:linear_attention,full_attention", "shared_intermediate_size": "ffn", "num_local_experts": 4, "num_experts_per_tok": 2}),
    Architecture("olmo_hybrid", "OlmoHybridForCausalLM", recurrent=True,
                 init={**_ATTN, "layer_types": "layer_types"}),
)


def kind(architecture: Architecture) -> str:
    """What the family's layers hold: "attention", "recurrent" or "hybrid" (both)."""
    if architecture.attention and architecture.recurrent:
        return "hybrid"
    return "attention" if architecture.attention else "recurrent"


def notes(architecture: Architecture) -> str:
    """What a user should know of the family in hybridc (the README's family table, ``hybridc families``)."""
    parts = [architecture.note] if architecture.note else []
    if not architecture.padding:
        parts.append("reads no padding mask (a padded row is not the unpadded one, in the family itself)")
    return "; ".join(parts)


def architecture_of(name: str) -> Architecture | None:
    """The architecture called ``name`` (a family name or a model type)."""
    found = ARCHITECTURES.get(name)
    if found is None:
        found = next((a for a in ARCHITECTURES.values() if a.model_type == name), None)
    return found


def architecture_for_class(class_name: str) -> Architecture | None:
    """The architecture whose ``*ForCausalLM`` is ``class_name`` (a config.json ``architectures`` entry)."""
    return next((a for a in ARCHITECTURES.values() if a.model_class == class_name), None)


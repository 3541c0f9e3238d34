"""The sample family's transformers model: ``ShiftForCausalLM``.

Layer i: ``h + out(gelu(mix([x_t, x_{t-1}])))`` with ``x = rmsnorm(h)`` zeroed at padding positions (so a
left-padded row computes what the unpadded row does), ``x_{-1} = 0``. The cache (a ``DynamicCache``) keeps each
layer's ``x`` of the tokens seen, as keys and values.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedConfig, PreTrainedModel
from transformers.cache_utils import Cache, DynamicCache
from transformers.generation import GenerationMixin
from transformers.modeling_outputs import CausalLMOutputWithPast


class ShiftConfig(PreTrainedConfig):
    model_type = "sample_shift"
    vocab_size: int = 96
    hidden_size: int = 32
    num_hidden_layers: int = 3
    intermediate_size: int = 64
    rms_norm_eps: float = 1e-6
    initializer_range: float = 0.02
    tie_word_embeddings: bool = True
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    eos_token_id: int | None = None


class RMSNorm(nn.Module):
    def __init__(self, d: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # (B, T, d)
        return h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class ShiftLayer(nn.Module):
    def __init__(self, config: ShiftConfig, layer_idx: int):
        super().__init__()
        d, inner = config.hidden_size, config.intermediate_size
        self.layer_idx = layer_idx
        self.norm = RMSNorm(d, config.rms_norm_eps)
        self.mix = nn.Linear(2 * d, inner, bias=False)
        self.out = nn.Linear(inner, d, bias=False)

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None,  # (B, T, d), (B, T) 1/0
                cache: Cache | None = None) -> torch.Tensor:
        x = self.norm(h)
        if mask is not None:
            x = x * mask[..., None].to(x.dtype)
        previous = torch.zeros_like(x[:, :1])
        if cache is not None:
            if cache.get_seq_length(self.layer_idx) > 0:
                previous = cache.layers[self.layer_idx].keys[:, 0, -1:]
            cache.update(x[:, None], x[:, None], self.layer_idx)
        shifted = torch.cat([previous, x[:, :-1]], dim=1)
        return h + self.out(nn.functional.gelu(self.mix(torch.cat([x, shifted], dim=-1))))


class ShiftPreTrainedModel(PreTrainedModel):
    config_class = ShiftConfig
    base_model_prefix = "model"
    _no_split_modules = ["ShiftLayer"]

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, RMSNorm):
            nn.init.ones_(module.weight)


class ShiftModel(ShiftPreTrainedModel):
    def __init__(self, config: ShiftConfig):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(ShiftLayer(config, i) for i in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.post_init()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                past_key_values: Cache | None = None, **kwargs) -> torch.Tensor:
        h = self.embed_tokens(input_ids)
        mask = attention_mask[:, -input_ids.shape[1]:] if attention_mask is not None else None
        for layer in self.layers:
            h = layer(h, mask, past_key_values)
        return self.norm(h)


class ShiftForCausalLM(ShiftPreTrainedModel, GenerationMixin):
    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: ShiftConfig):
        super().__init__(config)
        self.model = ShiftModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.model.embed_tokens

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                past_key_values: Cache | None = None, use_cache: bool | None = None, labels=None,
                **kwargs) -> CausalLMOutputWithPast:
        if use_cache and past_key_values is None:
            past_key_values = DynamicCache(config=self.config)
        logits = self.lm_head(self.model(input_ids, attention_mask, past_key_values))
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten())
        return CausalLMOutputWithPast(loss=loss, logits=logits, past_key_values=past_key_values)


AutoConfig.register(ShiftConfig.model_type, ShiftConfig, exist_ok=True)
AutoModelForCausalLM.register(ShiftConfig, ShiftForCausalLM, exist_ok=True)

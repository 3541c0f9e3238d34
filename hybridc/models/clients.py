"""What transformers' clients ask of a model (PEFT, TRL, ``Trainer``, ``resize_token_embeddings``, assisted
decoding): the input and output embeddings, the backbone, the modules LoRA targets. Mixed into ``HybridModel``;
``Backbone`` and ``EffectiveHead`` are views over the hybrid's own parameters."""

from __future__ import annotations

import torch
from torch import nn

from transformers.modeling_outputs import BaseModelOutputWithPast

from ..components.registry import get_family
from ..errors import CompileError
from ..graph.selection import graph_of
from ..nn.blocks import CompressionHead, MixedEmbedding, MixedLMHead
from ..nn.projectors import fit
from .names import group_of


class ClientViews:
    """The embeddings, backbone and LoRA targets of ``HybridModel`` as transformers' clients read them."""

    def get_input_embeddings(self) -> nn.Module:
        """The token embedding: the component's ``nn.Embedding`` when the hybrid embeds with one component,
        else the ``MixedEmbedding`` (ids (B, T) -> (B, T, d)) that mixes them."""
        sources = self.embed.sources
        return next(iter(sources.values())) if len(sources) == 1 else self.embed

    def set_input_embeddings(self, value: nn.Module) -> None:
        """Replace the single component's embedding (a mixed one is replaced whole)."""
        if isinstance(value, MixedEmbedding):
            self.embed = value
            return
        if len(self.embed.sources) != 1:
            raise CompileError("this hybrid mixes several embeddings", "set a MixedEmbedding, or each "
                               "component's in embed.sources")
        (name,) = self.embed.sources
        self.embed.sources[name] = value

    def get_output_embeddings(self) -> nn.Module | EffectiveHead | None:
        """The LM head as one (V, d) matrix, for clients that project hidden states themselves (TRL's fused
        head): the component's ``nn.Linear`` when the hybrid has one component's head of its width and
        vocabulary, else an ``EffectiveHead`` whose weight is the mixture sum_m a0_m pad(W_m[:V]) (and bias),
        computed when read. None for a classifier or MAD's compression read-out."""
        head = self.head
        if not isinstance(head, MixedLMHead) or isinstance(head, CompressionHead):
            return None
        if len(head.heads) == 1:
            (name, linear), = head.heads.items()
            if (type(linear) is nn.Linear and not head.ops[name] and linear.weight.shape == (head.vocab_size, self.graph.width)):
                return linear
        return EffectiveHead(self)

    def resize_token_embeddings(self, new_num_tokens: int | None = None, pad_to_multiple_of: int | None = None,
                                mean_resizing: bool = True) -> nn.Module:
        """Every component's embedding and head get ``new_num_tokens`` rows (rounded up to
        ``pad_to_multiple_of``), mixed or not: kept rows keep their weights, new rows are the mean of a
        component's old rows (``mean_resizing``) or zeros; the logits then have that size. The lock in the
        config follows (a saved model reloads at the new size). Returns the input embedding (see
        ``get_input_embeddings``). The hybrid's tokenizer is still the spec's: give the grown one with
        ``set_tokenizer`` before saving."""
        from .config import facts_of_lock

        if new_num_tokens is None:
            return self.get_input_embeddings()
        if not isinstance(self.head, MixedLMHead):
            raise CompileError("a classifier hybrid has no LM head to resize", "resize a causal-lm hybrid")
        size = int(new_num_tokens)
        if pad_to_multiple_of:
            size = -(-size // pad_to_multiple_of) * pad_to_multiple_of
        tied = dict(self._tied_weights_keys)
        for embedding in self.embed.sources.values():  # in place: a family's embedding class (Gemma's scale) stays
            embedding.weight = nn.Parameter(_resized_rows(embedding.weight, size, mean_resizing))
            embedding.num_embeddings = size
        for name, head in self.head.heads.items():
            if f"head.heads.{name}.weight" in tied:  # tied: the (resized) embedding's weight itself
                head.weight = self.embed.sources[name].weight
            else:
                head.weight = nn.Parameter(_resized_rows(head.weight, size, mean_resizing))
            if head.bias is not None:
                head.bias = nn.Parameter(_resized_rows(head.bias, size, mean_resizing))
            head.out_features = size
        self.head.vocab_size = size
        lock = self.config.lock
        lock["resolved"]["vocab_size"] = size
        for entry in lock["resolved"]["components"]:
            family = get_family(entry["family"])
            entry["config"][family.keys.vocab] = size
            entry["vocab_size"] = size
        self.config.vocab_size = facts_of_lock(lock, self.config.selection).get("vocab_size", size)
        self.resolved_spec = self.config.resolved()
        self.graph = graph_of(self.resolved_spec, self.config.selection)
        return self.get_input_embeddings()

    @property
    def base_model(self) -> "Backbone":
        """The hybrid without its head (``model.base_model(input_ids, ...)`` -> ``last_hidden_state``), as
        transformers clients look for a backbone (TRL's fused head runs it, then ``get_output_embeddings()``)."""
        return Backbone(self)

    def lora_target_modules(self, groups: tuple[str, ...] = ("components", "projectors")) -> list[str]:
        """The full names of the linear maps in ``groups`` (parameter groups: components, projectors, head),
        for PEFT's ``LoraConfig(target_modules=...)``: every ``nn.Linear`` (and GPT-2's ``Conv1D``) whose
        weight belongs to one of them. Components' maps keep their family's names (``q_proj``,
        ``query_key_value``, Mamba's ``in_proj``/``x_proj``/``dt_proj``/``out_proj``, ...); the hybrid's
        projectors are ``blocks.<i>.projector_in.<component>.net`` (``.net.0``/``.net.2`` for MLPs)."""
        from transformers.pytorch_utils import Conv1D

        names = []
        for name, module in self.named_modules():
            if isinstance(module, (nn.Linear, Conv1D)) and group_of(f"{name}.weight") in groups:
                names.append(name)
        return names

    # ---- generation -------------------------------------------------------------------------------


def _resized_rows(weight: torch.Tensor, size: int, mean: bool) -> torch.Tensor:
    """``weight`` (V, ...) with ``size`` rows: the first min(V, size) kept, the others the mean row or 0."""
    rows = weight.detach()
    if size <= rows.shape[0]:
        return rows[:size].clone()
    fill = rows.mean(0, keepdim=True) if mean else torch.zeros_like(rows[:1])
    return torch.cat([rows, fill.expand(size - rows.shape[0], *rows.shape[1:])])


class Backbone:
    """A causal-LM hybrid's embedding and blocks: ids (B, T) -> ``BaseModelOutputWithPast(last_hidden_state=
    (B, T, d))``. A view, not a module: the parameters are the hybrid's. It keeps block 0's mixture weights of
    its last call, so that ``EffectiveHead`` mixes the heads with the same draw (DASH samples them)."""

    def __init__(self, model: nn.Module):
        self.model = model

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                 position_ids: torch.Tensor | None = None, output_hidden_states: bool | None = None,
                 return_dict: bool | None = None, **kwargs) -> BaseModelOutputWithPast | tuple:
        """``last_hidden_state`` (B, T, d); ``hidden_states`` as the model's forward gives them when asked."""
        config = self.model.config
        output_hidden_states = config.output_hidden_states if output_hidden_states is None else output_hidden_states
        mixtures = self.model._mixtures()
        self.model._head_mixture = mixtures[0]
        states = [] if output_hidden_states else None
        h = self.model.hidden_states(input_ids, attention_mask, mixtures, position_ids, states=states)
        output = BaseModelOutputWithPast(last_hidden_state=h, hidden_states=tuple(states) if states else None)
        return output if (config.return_dict if return_dict is None else return_dict) else output.to_tuple()

    def get_input_embeddings(self) -> nn.Module:
        return self.model.get_input_embeddings()

    def get_decoder(self) -> "Backbone":
        return self


class EffectiveHead:
    """The hybrid's mixed linear LM heads as one linear map on the shared width: weight (V, d) =
    sum_m a0_m pad(W_m[:V]) and bias sum_m a0_m b_m[:V], differentiable in the heads and the alphas (what
    ``MixedLMHead`` computes, as one matrix). Heads with a logit transform (soft-capping, scaling) are not
    linear in that sense: reading the weight then raises."""

    def __init__(self, model: nn.Module):
        self.model = model

    def _terms(self):
        head, width = self.model.head, self.model.graph.width
        if any(head.ops.values()) or any(type(h) is not nn.Linear for h in head.heads.values()):
            raise CompileError("this hybrid's LM head is not one linear map (a component soft-caps or scales its "
                               "logits, or its head is not nn.Linear)", "compute the logits with the model's own "
                               "forward (in TRL, a hybrid whose head is one plain linear map trains with its fused head)")
        alphas, skip = getattr(self.model, "_head_mixture", None) or self.model._mixtures()[0]
        single = len(head.heads) == 1
        for j, (name, linear) in enumerate(head.heads.items()):
            if not single and skip and skip[j]:
                continue
            a = 1.0 if single else alphas[j]
            yield a, linear, width

    @property
    def weight(self) -> torch.Tensor:  # (V, d)
        vocab = self.model.head.vocab_size
        return sum(a * fit(linear.weight[:vocab], width) for a, linear, width in self._terms())

    @property
    def bias(self) -> torch.Tensor | None:  # (V,)
        vocab = self.model.head.vocab_size
        terms = [a * linear.bias[:vocab] for a, linear, _ in self._terms() if linear.bias is not None]
        return sum(terms) if terms else None

"""Lowering: ``BlockGraph`` -> ``HybridModel`` (a transformers ``PreTrainedModel``).

The model is built from the graph's nodes: one ``MixedBlock`` (or ``SingleBlock`` when discretized)
per block, each holding the component segments, projectors and mixture weights its nodes name; the
embedding and head are the graph's ``embed``/``head`` nodes. Its config carries the lock (canonical
spec + resolved component configs), so ``save_pretrained``/``from_pretrained`` round-trip without the
spec file or the original checkpoints.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import nullcontext

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.generation import GenerationMixin
from transformers.modeling_outputs import (
    CausalLMOutputWithPast,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)

from ..components.adapters import load_adapter
from ..components.registry import get_family
from ..data.tokenizer import Tokenizer
from ..errors import CompileError
from ..graph.selection import graph_of
from .remote_code import AUTO_CLASS_OF_TASK
from .config import HybridConfig
from ..spec.frontend import ResolvedSpec, lock_data
from ..nn.blocks import ClassifierHead, CompressionHead, MatchHead, MixedBlock, MixedEmbedding, MixedLMHead, SingleBlock
from ..nn.cache import HybridCache
from ..kernels.decode_path import check_decode_path, decode_step_context
from ..nn.mixture import Mix
from ..nn.outputs import AttentionRecorder
from ..nn.projectors import Projector, fit
from .clients import ClientViews
from .component_models import build_component, derived_seed, load_components
from .names import group_of
from .saving import SavedHybrid

IGNORE_INDEX = -100






class HybridModel(SavedHybrid, ClientViews, PreTrainedModel, GenerationMixin):
    """A pretrained hybrid. ``forward(input_ids, attention_mask=None, labels=None)`` returns an output
    with ``.logits`` ((B, T, V) for causal-lm/tag, (B, n) for classify and match) and ``.loss`` given labels.
    A match hybrid reads pairs of documents side by side: input_ids (B, 2T), the first document in positions
    0..T-1 and the second in T..2T-1, each right-padded; it encodes each alone.

    Causal-LM hybrids generate with Hugging Face ``generate()`` (greedy, sampling, beam search) through a
    ``HybridCache``: each component keeps its own cache (keys/values, or conv + SSM states)."""

    config_class = HybridConfig
    base_model_prefix = "hybrid"
    main_input_name = "input_ids"
    _supports_sdpa = True
    # gradient_checkpointing_enable() reaches the components' own layers (transformers checkpoints them in
    # their __call__; hybridc's fast Mamba path checks the same switch)
    supports_gradient_checkpointing = True
    _no_split_modules: list[str] = []

    required_task: str | tuple[str, ...] | None = None  # set by the task classes the Auto classes load (HybridForCausalLM, ...)

    def __init__(self, config: HybridConfig, components: Mapping[str, nn.Module] | None = None,
                 resolved: ResolvedSpec | None = None):
        super().__init__(config)
        rs = resolved or config.resolved()
        required = (self.required_task,) if isinstance(self.required_task, str) else self.required_task
        if required is not None and rs.spec.task.kind not in required:
            raise CompileError(f"this hybrid's task is {rs.spec.task}, not {' or '.join(required)}",
                               f"load it with {AUTO_CLASS_OF_TASK[rs.spec.task.kind]} (or AutoModel, or HybridModel)")
        self.resolved_spec = rs
        self.graph = graph_of(rs, config.selection)
        models = dict(components or {})
        seed = rs.spec.train.seed
        used = self._used_components()
        for name in used:
            if name not in models:
                models[name] = build_component(rs, name, seed)
        adapters = {name: load_adapter(get_family(rs.component(name).family), models[name]) for name in used}
        self._adapters = adapters  # plain references (their parts are registered below) for cached decoding
        # Each component module's own transformers model, whose _init_weights knows its buffers.
        self._owners = {id(module): models[name] for name in used for module in models[name].modules()}
        self._initialized_owners: set[int] = set()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derived_seed(seed, "hybrid"))
            self._build(adapters)
        self._tied_weights_keys = self._tied_heads()
        # what accelerate must not split across devices: the components' own layer classes
        self._no_split_modules = sorted({cls for name in used for cls in (models[name]._no_split_modules or [])})
        self.decode_path = "fast"  # see set_decode_path
        self._tokenizer: Tokenizer | None = None
        self._tokenizer_known = False  # _tokenizer (None included) is the answer
        self._tokenizer_home: str | None = None  # the directory this model was loaded from
        self.tokenizer_problem: str | None = None  # why get_tokenizer() returns None
        self.post_init()
        if self.config._attn_implementation == "eager":  # asked for (from_pretrained(attn_implementation="eager"))
            for adapter in adapters.values():
                _set_component_attention(adapter.model, "eager")

    # ---- construction from the graph ----------------------------------------------------------
    def _used_components(self) -> list[str]:
        g = self.graph
        used = {n.component for n in g.nodes() if n.component}
        used |= set(g.node("embed").components) | set(g.node("head").components)
        return [m for m in g.names if m in used]

    def _build(self, adapters) -> None:
        g, rs = self.graph, self.resolved_spec
        d = g.width
        embed = g.node("embed")
        self.embed = MixedEmbedding({m: adapters[m].embedding() for m in embed.components}, d)
        blocks = []
        for i in range(g.num_blocks):
            segs = {n.component: adapters[n.component].segment(n.layers.start, n.layers.stop)
                    for n in g.block_nodes(i, "segment")}
            ins = {n.component: Projector(n.projector, n.d_in, n.d_out) for n in g.block_nodes(i, "in_proj")}
            outs = {n.component: Projector(n.projector, n.d_in, n.d_out) for n in g.block_nodes(i, "out_proj")}
            if g.discretized:
                (name,) = segs
                blocks.append(SingleBlock(name, segs[name], ins.get(name), outs.get(name),
                                          rs.component(name).hidden_size, d))
            else:
                alphas = g.alphas[i] if g.alphas is not None else None
                mix = Mix(len(g.names), learned=g.mixture == "search", alphas=alphas)
                blocks.append(MixedBlock(segs, ins, outs, mix, d))
        self.blocks = nn.ModuleList(blocks)
        head = g.node("head")
        if head.head_kind in ("lm", "compress"):
            heads = {m: adapters[m].lm_head() for m in head.components}
            widths = {m: rs.component(m).hidden_size for m in head.components}
            ops = {m: adapters[m].logit_ops() for m in head.components}
            if head.head_kind == "compress":
                self.head = CompressionHead(heads, widths, g.vocab_size, d, ops)
            else:
                self.head = MixedLMHead(heads, widths, g.vocab_size, ops)
        elif head.head_kind == "match":
            self.head = MatchHead(d, head.d_out)
        else:
            self.head = ClassifierHead(d, head.d_out, pool=head.head_kind == "classify")

    def _tied_heads(self) -> dict[str, str]:
        """{head weight: embedding weight} for components whose LM head is tied to their embedding and
        whose embedding and head both are in the hybrid (transformers keeps them tied on load)."""
        if not isinstance(self.head, MixedLMHead):
            return {}
        tied = {}
        for m in self.head.heads:
            if m in self.embed.sources and self.resolved_spec.component(m).shape.tied_embeddings:
                tied[f"head.heads.{m}.weight"] = f"embed.sources.{m}.weight"
                self.head.heads[m].weight = self.embed.sources[m].weight
        return tied

    def _init_weights(self, module: nn.Module) -> None:
        """Parts are initialised when built (components by their family, projectors by kind). What no
        checkpoint holds, a component module's non-persistent buffers (GPT-Neo's causal and local masks,
        rotary inverse frequencies, ...), is computed by the owning component's own ``_init_weights``,
        as its family's ``from_pretrained`` does (loaded parameters are left alone: transformers' init
        functions skip tensors it marked as loaded)."""
        if not module._non_persistent_buffers_set:
            return
        owner = self._owners.get(id(module))
        if owner is not None:
            owner._init_weights(module)
            # some families compute their layers' buffers at the level of their base model (Falcon-H1's
            # mup_vector), which the hybrid does not hold: once per component, that level too
            if id(owner) not in self._initialized_owners:
                self._initialized_owners.add(id(owner))
                owner._init_weights(owner.base_model)

    # ---- forward --------------------------------------------------------------------------------
    def alphas(self) -> torch.Tensor:
        """Mixture weights (N, M), each row on the simplex: softmax of the logits (or the fixed weights),
        never a sampled draw, in any mode. A discretized hybrid returns one-hot rows."""
        g = self.graph
        if g.discretized:
            rows = [[1.0 if m == s else 0.0 for m in g.names] for s in g.selection]
            return torch.tensor(rows)
        return torch.stack([block.mix.alpha() for block in self.blocks])

    def _mixtures(self) -> list[tuple[torch.Tensor | None, list[bool]]]:
        """(alphas (M,), constant-zero flags) per block, computed once per forward pass."""
        if self.graph.discretized:
            return [(None, []) for _ in self.blocks]
        return [(block.mix(), block.mix.constant_zeros()) for block in self.blocks]

    def _running(self, mixtures: list) -> list[str]:
        """The components whose segments run in a forward with these mixtures (a branch whose weight is a
        constant 0 in every block never runs, and keeps no cache)."""
        names = set()
        for block, (_, skip) in zip(self.blocks, mixtures):
            names.update(name for j, name in enumerate(block.segments) if not (skip and skip[j]))
        return [m for m in self.graph.names if m in names]

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                      mixtures: list | None = None, position_ids: torch.Tensor | None = None,
                      cache: HybridCache | None = None, states: list | None = None) -> torch.Tensor:
        """Final hidden states (B, T, d), before the head. With ``cache``, ``input_ids`` are the tokens that
        follow the cached ones and every component's cache is extended by them. ``states``: a list that receives
        the embedding output and each block's output, N + 1 tensors (B, T, d) (the last is the one returned).

        Before any block runs, each running component prepares what its family's forward computes before
        its layers (positions, masks, rotary tables, ...; ``ComponentAdapter.prepare``) from the embeddings
        cut to its width: once per forward, shared by its segments (which update its cache)."""
        mixtures = mixtures if mixtures is not None else self._mixtures()
        a0, skip0 = mixtures[0]
        h = self.embed(input_ids, a0, skip0)  # (B, T, d)
        if states is not None:
            states.append(h)
        contexts = {}
        for m in self._running(mixtures):
            component_cache = cache.components.get(m) if cache is not None else None
            if cache is not None and component_cache is None:
                continue
            width = self.resolved_spec.component(m).hidden_size
            contexts[m] = self._adapters[m].prepare(fit(h, width), attention_mask, position_ids, component_cache)
        for block, (alphas, skip) in zip(self.blocks, mixtures):
            h = block(h, alphas, skip, attention_mask=attention_mask, position_ids=position_ids, contexts=contexts)
            if states is not None:
                states.append(h)
        if cache is not None:
            cache.advance(input_ids.shape[1])
        return h

    def new_cache(self) -> HybridCache:
        """An empty generation cache: one cache per component that runs a segment."""
        running = self._running(self._mixtures())
        return HybridCache({m: self._adapters[m].new_cache() for m in running})

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, past_key_values: HybridCache | None = None,
                use_cache: bool | None = None, position_ids: torch.Tensor | None = None,
                output_hidden_states: bool | None = None, output_attentions: bool | None = None,
                return_dict: bool | None = None, **kwargs):
        """The logits (and ``loss`` given ``labels``), as transformers' models of the task return them
        (``CausalLMOutputWithPast``, ``SequenceClassifierOutput``, ``TokenClassifierOutput``).

        ``output_hidden_states`` (default ``config.output_hidden_states``): ``hidden_states`` holds the embedding
        output and the residual stream after every block, ``num_hidden_layers + 1`` tensors (B, T, d) of the
        shared width d (the last is what the head reads: after the final norms of the components that end
        there). ``output_attentions`` (default ``config.output_attentions``): ``attentions`` holds the weights
        (B, heads, T, past + T) of every attention layer that runs, in the order they run (block by block, a
        mixed block's components in the spec's order); components without attention (Mamba) add none, and
        a component computing attention with SDPA returns none (a warning says so and names the fix:
        ``model.set_attn_implementation("eager")``). ``return_dict=False`` (default: ``config.return_dict``)
        returns the tuple ``to_tuple()`` gives: loss (given labels), logits, past_key_values (with a cache),
        hidden_states, attentions (when asked)."""
        config = self.config
        output_hidden_states = config.output_hidden_states if output_hidden_states is None else output_hidden_states
        output_attentions = config.output_attentions if output_attentions is None else output_attentions
        return_dict = config.return_dict if return_dict is None else return_dict
        mixtures = self._mixtures()
        cache = past_key_values
        if use_cache and cache is None and isinstance(self.head, MixedLMHead) and not self.training:
            cache = self.new_cache()
        if cache is not None and not isinstance(cache, HybridCache):
            raise CompileError("a HybridModel takes a HybridCache as past_key_values",
                               "let generate() create it, or use model.new_cache()")
        if isinstance(self.head, MatchHead):  # (B, 2T) -> (2B, T): rows 2b, 2b + 1 are pair b's documents
            if cache is not None or input_ids.shape[1] % 2:
                raise CompileError(f"a match hybrid reads pairs of documents side by side, (B, 2T) tokens, not "
                                   f"{tuple(input_ids.shape)}" + (" with a cache" if cache is not None else ""),
                                   "give input_ids of even length: each document right-padded to T")
            input_ids = input_ids.reshape(-1, input_ids.shape[1] // 2)
            if attention_mask is not None:
                attention_mask = attention_mask.reshape(input_ids.shape)
            position_ids = None
        states = [] if output_hidden_states else None
        recorder = AttentionRecorder(self.blocks, {m: self._adapters[m].model for m in self._running(mixtures)}) \
            if output_attentions else None
        step = decode_step_context(self, input_ids, cache)  # (the fast decode path: hybridc.kernels.decode_path)
        with recorder.recording() if recorder is not None else nullcontext(), step:
            h = self.hidden_states(input_ids, attention_mask, mixtures, position_ids, cache, states)
        extras = {"hidden_states": tuple(states) if states is not None else None,
                  "attentions": tuple(recorder.weights) if recorder is not None else None}
        if recorder is not None:
            recorder.warn()
        if isinstance(self.head, MixedLMHead):
            a0, skip0 = mixtures[0]
            with decode_step_context(self, input_ids, cache):
                logits = self.head(h, a0, skip0)  # (B, T, V)
            loss = None
            if labels is not None:
                shift = 0 if isinstance(self.head, CompressionHead) else 1  # compress: position t rebuilds t
                loss = nn.functional.cross_entropy(
                    logits[:, : logits.shape[1] - shift].reshape(-1, logits.shape[-1]).float(),
                    labels[:, shift:].reshape(-1), ignore_index=IGNORE_INDEX)
            output = CausalLMOutputWithPast(loss=loss, logits=logits, past_key_values=cache, **extras)
        else:
            logits = self.head(h, attention_mask)
            loss = None
            if labels is not None:
                loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1),
                                                   ignore_index=IGNORE_INDEX)
            kind = SequenceClassifierOutput if self.head.pool else TokenClassifierOutput
            output = kind(loss=loss, logits=logits, **extras)
        return output if return_dict else output.to_tuple()

    def set_attn_implementation(self, attn_implementation: str | dict, **kwargs) -> None:
        """transformers' ``set_attn_implementation``, reaching the components: each component's attention layers
        read their own family's config (``"eager"`` is what ``output_attentions`` needs)."""
        super().set_attn_implementation(attn_implementation, **kwargs)
        for adapter in self._adapters.values():
            _set_component_attention(adapter.model, attn_implementation, **kwargs)


    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        return False  # forward() makes its own HybridCache

    def generate(self, *args, **kwargs):
        """transformers' ``generate``. Assisted generation (``prompt_lookup_num_tokens``, an ``assistant_model``,
        or this hybrid drafting as another model's assistant) runs with a ``HybridCache`` made here, whose
        components forget rejected candidates (key/value layers drop them, Mamba and Mamba-2 state layers roll
        back): the tokens are greedy decoding's. A component whose state cannot roll back is refused first."""
        if self.graph.task != "causal-lm":
            raise CompileError(f"a {self.graph.task} hybrid does not generate text", "generation needs task: causal-lm")
        config = kwargs.get("generation_config") or self.generation_config
        assisted = kwargs.get("assistant_model") is not None or any(
            kwargs.get(key, getattr(config, key, None)) is not None
            for key in ("prompt_lookup_num_tokens", "assistant_early_exit"))
        drafting = bool(getattr(config, "is_assistant", False))  # (transformers' candidate generator sets it)
        cache = None
        if assisted or drafting:
            cache = kwargs.get("past_key_values")
            if cache is None:
                cache = kwargs["past_key_values"] = self.new_cache()
            if isinstance(cache, HybridCache):
                self._refuse_unrollable(cache, "drafting for another model" if drafting else "assisted generation")
                if drafting:  # the main model crops its draft's cache: the draft's recurrent states must roll back
                    cache.activate_past_recording()
        try:
            return super().generate(*args, **kwargs)
        finally:
            if assisted and not drafting and isinstance(cache, HybridCache):
                cache.stop_recording()  # the cache given back (return_dict_in_generate) records no more past

    def _refuse_unrollable(self, cache: HybridCache, what: str) -> None:
        """A ``CompileError`` when a component's cache cannot forget tokens (``HybridCache.rollback_problems``)."""
        problems = cache.rollback_problems()
        if problems:
            named = ", ".join(f"'{m}' ({self.resolved_spec.component(m).family})" for m in problems)
            several = len(problems) > 1
            raise CompileError(f"{what} needs a cache that forgets rejected candidates, and component"
                               f"{'s' if several else ''} {named} keep{'' if several else 's'} a recurrent state that "
                               "cannot be rolled back", "generate without prompt_lookup_num_tokens or an "
                               "assistant_model (attention, Mamba and Mamba-2 components roll back)")

    def set_decode_path(self, path: str) -> None:
        """How a decode step (one token per sequence, with a cache, no gradient) runs: "fast" (the default: Mamba's
        single-token update in one C call per layer, small-batch linear maps by hybridc's kernel; see
        ``hybridc.kernels.decode_path``) or "eager" (transformers' own update and PyTorch's linear maps, the reference)."""
        self.decode_path = check_decode_path(path)
        for module in self.modules():
            if hasattr(module, "step_kernel"):
                module.step_kernel = path == "fast"

    def set_scan_backend(self, backend: str) -> None:
        """The selective-scan backend of every Mamba segment: auto (fused CUDA kernels when installed and on
        a GPU, else the fused CPU scan when it builds, else the chunked one), fused, chunked, reference (the
        token loop) or transformers."""
        for module in self.modules():
            if hasattr(module, "scan_backend"):
                module.scan_backend = backend

    # ---- parameter groups -------------------------------------------------------------------------
    def param_groups(self) -> dict[str, list[tuple[str, nn.Parameter]]]:
        """Parameters by group (components, projectors, embeddings, head, alphas). A weight shared by a
        tied head and its embedding belongs to embeddings."""
        groups: dict[str, list[tuple[str, nn.Parameter]]] = {
            g: [] for g in ("components", "projectors", "embeddings", "head", "alphas")}
        for name, p in self.named_parameters():
            groups[group_of(name)].append((name, p))
        return groups


def _set_component_attention(model: nn.Module, attn_implementation: str | dict, **kwargs) -> None:
    """Set a component's attention implementation, where its family has attention layers and its model can
    change it (a family without attention, such as Mamba, is left alone)."""
    from ..nn.outputs import attention_specs

    if not isinstance(model, PreTrainedModel) or not attention_specs(model):
        return
    if model.config._attn_implementation != attn_implementation:
        model.set_attn_implementation(attn_implementation, **kwargs)


class HybridForCausalLM(HybridModel):
    """A causal-lm hybrid, as ``AutoModelForCausalLM`` loads it (refuses other tasks)."""

    required_task = "causal-lm"


class HybridForSequenceClassification(HybridModel):
    """A ``classify(n)`` hybrid (or a ``match(n)`` one: a pair of documents side by side), as
    ``AutoModelForSequenceClassification`` loads it."""

    required_task = ("classify", "match")


class HybridForTokenClassification(HybridModel):
    """A ``tag(n)`` hybrid, as ``AutoModelForTokenClassification`` loads it."""

    required_task = "tag"




def lower(rs: ResolvedSpec, selection: list[str] | None = None, *, pretrained: bool = True) -> HybridModel:
    """Build the hybrid of a resolved spec. ``pretrained``: load the ``from:`` components' weights."""
    config = HybridConfig(lock=lock_data(rs), selection=selection)
    graph = graph_of(rs, selection)
    used = {n.component for n in graph.nodes() if n.component}
    used |= set(graph.node("embed").components) | set(graph.node("head").components)
    models = load_components(rs, [m for m in rs.names if m in used]) if pretrained else {}
    return HybridModel(config, components=models, resolved=rs)

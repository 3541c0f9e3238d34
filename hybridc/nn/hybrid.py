"""Lowering: ``BlockGraph`` -> ``HybridModel`` (a transformers ``PreTrainedModel``).

The model is built from the graph's nodes: one ``MixedBlock`` (or ``SingleBlock`` when discretized)
per block, each holding the component segments, projectors and mixture weights its nodes name; the
embedding and head are the graph's ``embed``/``head`` nodes. Its config carries the lock (canonical
spec + resolved component configs), so ``save_pretrained``/``from_pretrained`` round-trip without the
spec file or the original checkpoints.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from contextlib import nullcontext
from pathlib import Path

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.generation import GenerationMixin
from transformers.modeling_outputs import (
    BaseModelOutputWithPast,
    CausalLMOutputWithPast,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)

from ..components.adapters import build_model, load_adapter, load_pretrained
from ..components.registry import get_family
from ..data.tokenizer import Tokenizer, load_tokenizer, save_tokenizer, saved_tokenizer, set_generation_ids
from ..errors import CompileError, RunError
from ..graph.build import build_graph
from ..graph.discretize import discretize_graph
from ..graph.model import BlockGraph
from ..hf_auto import AUTO_CLASS_OF_TASK, AUTO_MAP, write_remote_code
from ..hf_config import HybridConfig
from ..io import give_umask_mode
from ..spec.frontend import ResolvedSpec, lock_data
from .blocks import ClassifierHead, CompressionHead, MixedBlock, MixedEmbedding, MixedLMHead, SingleBlock
from .cache import HybridCache
from .decode import check_decode_path, decode_step_context
from .mixture import Mix
from .outputs import AttentionRecorder
from .projectors import Projector, fit
from .vocab import TransplantPlan, transplant_plan, under_hybrid_vocab

IGNORE_INDEX = -100


def derived_seed(seed: int, *parts: str) -> int:
    """A seed for one random choice, derived from the spec's seed and a name (stable across runs)."""
    digest = hashlib.sha256(":".join((str(seed), *parts)).encode()).digest()
    return int.from_bytes(digest[:4], "little")


def graph_of(rs: ResolvedSpec, selection: list[str] | None) -> BlockGraph:
    return discretize_graph(rs, selection) if selection is not None else build_graph(rs)


class HybridModel(PreTrainedModel, GenerationMixin):
    """A pretrained hybrid. ``forward(input_ids, attention_mask=None, labels=None)`` returns an output
    with ``.logits`` ((B, T, V) for causal-lm/tag, (B, n) for classify) and ``.loss`` given labels.

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

    required_task: str | None = None  # set by the task classes the Auto classes load (HybridForCausalLM, ...)

    def __init__(self, config: HybridConfig, components: Mapping[str, nn.Module] | None = None,
                 resolved: ResolvedSpec | None = None):
        super().__init__(config)
        rs = resolved or config.resolved()
        if self.required_task is not None and rs.spec.task.kind != self.required_task:
            raise CompileError(f"this hybrid's task is {rs.spec.task}, not {self.required_task}",
                               f"load it with {AUTO_CLASS_OF_TASK[rs.spec.task.kind]} (or AutoModel, or HybridModel)")
        self.resolved_spec = rs
        self.graph = graph_of(rs, config.selection)
        models = dict(components or {})
        seed = rs.spec.train.seed
        used = self._used_components()
        for name in used:
            if name not in models:
                models[name] = _build_component(rs, name, seed)
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
        states = [] if output_hidden_states else None
        recorder = AttentionRecorder(self.blocks, {m: self._adapters[m].model for m in self._running(mixtures)}) \
            if output_attentions else None
        step = decode_step_context(self, input_ids, cache)  # (the fast decode path: hybridc.nn.decode)
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

    # ---- saving and loading -----------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """``PreTrainedModel.from_pretrained``; the model remembers where it came from, so that
        ``get_tokenizer`` reads the tokenizer saved beside it (nothing outside the directory is read).
        Weights saved by earlier releases under their old names load too (``LEGACY_KEYS``).

        Nothing damaged loads: a local directory is checked before anything is loaded (``_check_saved``),
        and transformers' loading report after (a tensor missing would be initialised at random); either
        refusal is a ``RunError`` saying what is wrong."""
        from ..saved import check_loading_info

        kwargs.setdefault("key_mapping", dict(LEGACY_KEYS))
        directory = Path(pretrained_model_name_or_path or "") / (kwargs.get("subfolder") or "")
        if pretrained_model_name_or_path is not None and directory.is_dir():
            cls._check_saved(directory, kwargs.get("config"), kwargs["key_mapping"])
        wants_info = kwargs.pop("output_loading_info", False)
        model, info = super().from_pretrained(pretrained_model_name_or_path, *args, output_loading_info=True, **kwargs)
        check_loading_info(info, directory)
        model._tokenizer_home = str(pretrained_model_name_or_path)
        return (model, info) if wants_info else model

    @classmethod
    def _check_saved(cls, directory: Path, config: HybridConfig | None, key_mapping: Mapping[str, str]) -> None:
        """A saved hybrid's directory, before loading: its config.json (a JSON object, sizes bounded, a lock
        whose components are each listed once; unless ``config`` is given) and its generation config are
        readable, its weights files are inside it, and they hold exactly the tensors of the model the config
        describes (built on the meta device), in its shapes. A ``RunError`` (``hybridc.saved``) otherwise."""
        import copy

        from ..saved import (build_on_meta, check_generation_config, check_hybrid_config, check_tensors, load_config,
                             read_config, refuse_plain)

        if isinstance(config, HybridConfig):
            config, where = copy.deepcopy(config), Path(f"the config given for {directory}")
        else:
            data = read_config(directory)
            refuse_plain(directory, data)
            check_hybrid_config(data, directory / "config.json")
            # read as transformers reads it (floats JSON cannot hold, such as inf, are tagged objects)
            config, where = load_config(cls.config_class.from_pretrained, directory), directory / "config.json"
        resolved = check_hybrid_config({"lock": config.lock, "selection": config.selection}, where)
        check_generation_config(directory)
        check_tensors(build_on_meta(lambda: cls(config, resolved=resolved), directory), directory, key_mapping)

    @classmethod
    def is_remote_code(cls) -> bool:
        """False: a hybrid's code is the installed hybridc package, whatever class loaded it. After a
        ``trust_remote_code=True`` load transformers marks the class as remote code, and ``save_pretrained`` would
        copy the module defining it; hybridc writes the directory's modules itself (``save_pretrained``), the same
        for every hybrid, so a model loaded from a directory saved by any release saves again."""
        return False

    def save_pretrained(self, save_directory, *args, **kwargs) -> None:
        """``PreTrainedModel.save_pretrained`` (config.json with the lock, model.safetensors,
        generation_config.json) plus the hybrid's tokenizer files (see ``get_tokenizer``), so the directory
        is self-contained: ``from_pretrained`` and ``AutoTokenizer.from_pretrained`` need nothing else.
        The config's ``auto_map`` and two small modules (``hybridc.hf_auto.REMOTE_CODE``) let any transformers
        client load it with ``trust_remote_code=True`` without importing hybridc first, and save it again (what
        ``Trainer.save_model``, its checkpoints, PEFT's merged model and TRL call) into a directory that loads
        the same way."""
        tokenizer = self.get_tokenizer()
        if tokenizer is not None:
            set_generation_ids(self.generation_config, tokenizer)
            set_generation_ids(self.config, tokenizer)  # clients read the special tokens from the config too
        self.config.auto_map = dict(AUTO_MAP)
        super().save_pretrained(save_directory, *args, **kwargs)
        if kwargs.get("is_main_process", True):
            give_umask_mode(*Path(save_directory).glob("*.safetensors"))
            write_remote_code(save_directory)
            if tokenizer is not None:
                save_tokenizer(tokenizer, save_directory)

    def get_tokenizer(self) -> Tokenizer | None:
        """The hybrid's tokenizer (the spec's ``tokenizer``): the one saved in the directory this model was
        loaded from, else loaded from its source (a component's directory or Hub id, a tokenizer directory,
        ``hf:<id>``; ``bytes`` needs none). None when there is none: a from-scratch component's, or a source
        without tokenizer files (``tokenizer_problem`` says why)."""
        if not self._tokenizer_known:
            field = self.resolved_spec.spec.tokenizer
            try:
                if self._tokenizer_home is not None:
                    tokenizer = saved_tokenizer(field, self._tokenizer_home)
                    problem = None if tokenizer is not None else f"{self._tokenizer_home} holds no tokenizer files"
                else:
                    tokenizer = load_tokenizer(self.resolved_spec)
                    problem = None if tokenizer is not None else (
                        f"the tokenizer is component '{field}', which is built from scratch and has none")
            except RunError as err:
                tokenizer, problem = None, err.render().removeprefix("error: ")
            self.set_tokenizer(tokenizer, problem)
        return self._tokenizer

    def set_tokenizer(self, tokenizer: Tokenizer | None, problem: str | None = None) -> None:
        """Give the model its tokenizer (one already loaded, or another model's: ``discretize`` passes it on)."""
        self._tokenizer, self._tokenizer_known, self.tokenizer_problem = tokenizer, True, problem

    # ---- what transformers clients ask of a model --------------------------------------------------
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
        from ..hf_config import facts_of_lock

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
        ``hybridc.nn.decode``) or "eager" (transformers' own update and PyTorch's linear maps, the reference)."""
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
    from .outputs import attention_specs

    if not isinstance(model, PreTrainedModel) or not attention_specs(model):
        return
    if model.config._attn_implementation != attn_implementation:
        model.set_attn_implementation(attn_implementation, **kwargs)


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

    def __init__(self, model: HybridModel):
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

    def __init__(self, model: HybridModel):
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


class HybridForCausalLM(HybridModel):
    """A causal-lm hybrid, as ``AutoModelForCausalLM`` loads it (refuses other tasks)."""

    required_task = "causal-lm"


class HybridForSequenceClassification(HybridModel):
    """A ``classify(n)`` hybrid, as ``AutoModelForSequenceClassification`` loads it."""

    required_task = "classify"


class HybridForTokenClassification(HybridModel):
    """A ``tag(n)`` hybrid, as ``AutoModelForTokenClassification`` loads it."""

    required_task = "tag"


# Parameter names of earlier releases (regex -> replacement): the blocks' projectors were ``in_proj`` and
# ``out_proj`` (renamed: Mamba's layers have modules of those names, which PEFT targets by name).
LEGACY_KEYS = {r"^blocks\.(\d+)\.in_proj\.": r"blocks.\1.projector_in.",
               r"^blocks\.(\d+)\.out_proj\.": r"blocks.\1.projector_out."}


def upgrade_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict with the names of earlier releases renamed (``LEGACY_KEYS``)."""
    import re

    out = {}
    for key, value in state.items():
        for pattern, replacement in LEGACY_KEYS.items():
            key = re.sub(pattern, replacement, key)
        out[key] = value
    return out


def group_of(param_name: str) -> str:
    """The parameter group of a HybridModel parameter name."""
    if param_name.startswith("embed."):
        return "embeddings"
    if param_name.startswith("head."):
        return "head"
    parts = param_name.split(".")
    if parts[0] == "blocks":
        return {"segments": "components", "projector_in": "projectors", "projector_out": "projectors",
                "mix": "alphas"}[parts[2]]
    raise ValueError(f"parameter {param_name} belongs to no group")


def _build_component(rs: ResolvedSpec, name: str, seed: int) -> nn.Module:
    """A new model of component ``name`` (its config, initialised from ``seed``); a config its family cannot build
    is a located ``SpecError`` naming the key (``components.build_errors``)."""
    from ..components.adapters import build_on_meta
    from ..errors import HybridcError

    family = get_family(rs.component(name).family)
    try:
        return build_model(family, rs.component(name).config, seed=derived_seed(seed, "component", name))
    except HybridcError:
        raise
    except Exception as err:
        from ..components.build_errors import located_build_error

        raise located_build_error(rs, name, err, lambda config: build_on_meta(family, config)) from None


def load_components(rs: ResolvedSpec, names) -> dict[str, nn.Module]:
    """Load the pretrained weights of the ``from:`` components among ``names``; a ``vocab: new`` or
    ``transplant`` component comes rebuilt for the hybrid's vocabulary (``hybridc.nn.vocab``)."""
    models = {}
    for name in names:
        component = rs.spec.component(name)
        rc = rs.component(name)
        if component.source.kind == "init":
            continue
        _confine_component_files(rs, name)
        try:
            models[name] = load_pretrained(get_family(rc.family), rc.location, revision=rc.revision,
                                           trust_remote_code=component.trust_remote_code)
        except Exception as err:  # (a mamba-ssm checkpoint's error says what to do: its hint)
            raise CompileError(f"cannot load the weights of component '{name}' from {component.source}: {err}",
                               getattr(err, "hint", None) or "check that the directory holds safetensors weights "
                               "written by save_pretrained") from None
        if rc.vocab != "pretrained":
            plan = transplant_plan_of(rs, rc) if rc.vocab == "transplant" else None
            models[name] = under_hybrid_vocab(models[name], rc, seed=derived_seed(rs.spec.train.seed, "vocab", name),
                                              plan=plan)
    return models


def _confine_component_files(rs: ResolvedSpec, name: str) -> None:
    """A component resolved under a root (``--root``): every file in a local component's directory
    (config.json, the weights, tokenizer files) must still resolve inside the root when the weights are read,
    and a Hub id may not name a local path (transformers would read it instead), else a located ``SpecError``
    naming the file and the root (nothing outside is opened)."""
    from ..components import hub
    from ..errors import Diagnostic, SpecError
    from ..spec.resolve import PathError, spec_path

    rc = rs.component(name)
    source = rs.spec.component(name).source
    if rc.root is None or rc.location is None:
        return
    try:
        if source.kind == "local":
            spec_path(Path(rc.location), rc.location, Path(rc.root))  # the directory, then each file in it
        elif hub.shadowing_directory(source.ref) is not None:  # from_pretrained would read it, not the Hub
            raise PathError(f"hf:{source.ref} is also a local path here, which transformers would load instead "
                            "of the Hub's files, unchecked by --root",
                            f"run hybridc from another directory, or write from: ./{source.ref}")
    except PathError as err:
        raise SpecError([Diagnostic(rs.source_map.at("components", name, "from"), f"component '{name}': {err.message}",
                                    err.hint)]) from None


def transplant_plan_of(rs: ResolvedSpec, rc) -> TransplantPlan:
    """How component ``rc``'s rows move into the hybrid's vocabulary (its own tokenizer -> the hybrid's)."""
    from ..data.tokenizer import load_hf_tokenizer

    own = load_hf_tokenizer(rc.location, rc.revision, name=rc.name, what=f"the tokenizer of component '{rc.name}'")
    hybrid = load_tokenizer(rs)
    if hybrid is None:
        raise CompileError(f"component '{rc.name}': vocab: transplant needs the hybrid's tokenizer, and it has none",
                           "give the spec a tokenizer with files, or use vocab: new")
    return transplant_plan(own, hybrid, rs.vocab_size)


def lower(rs: ResolvedSpec, selection: list[str] | None = None, *, pretrained: bool = True) -> HybridModel:
    """Build the hybrid of a resolved spec. ``pretrained``: load the ``from:`` components' weights."""
    config = HybridConfig(lock=lock_data(rs), selection=selection)
    graph = graph_of(rs, selection)
    used = {n.component for n in graph.nodes() if n.component}
    used |= set(graph.node("embed").components) | set(graph.node("head").components)
    models = load_components(rs, [m for m in rs.names if m in used]) if pretrained else {}
    return HybridModel(config, components=models, resolved=rs)

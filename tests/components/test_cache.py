"""Cached (incremental) decoding through segments: ``new_cache`` + ``prepare`` + ``segment(context=...)``.

For every family: prefill then one token at a time (and a multi-token chunk after a filled cache)
reproduces the model's full-sequence logits; left-padded batches with ``generate``'s positions match
the model's own padded forward and the unpadded rows; greedy decoding gives ``model.generate``'s tokens.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import pytest
import torch
from torch import nn
from transformers.cache_utils import CacheLayerMixin, DynamicCache

from hybridc.components.adapters import ComponentAdapter, build_model, load_adapter
from hybridc.components.adapters.base import StepContext
from hybridc.components.logits import apply_logit_ops
from hybridc.components.registry import families, get_family
from tests.tiny_models import REPRESENTATIVE_FAMILIES, TINY_COMMON, tiny_config

FAMILIES = sorted(REPRESENTATIVE_FAMILIES)
ATTENTION = [name for name in FAMILIES if families()[name].has_attention]
# RWKV and xLSTM read no padding mask: a padded row is not the unpadded one, in the families themselves
PADDED = [name for name in FAMILIES if families()[name].architecture.padding]
VOCAB = TINY_COMMON["vocab_size"]
CUTS = (0, 1, 3)  # two segments sharing one cache: the second runs after the first updated layer 0
TOL = 1e-5
# GPT-Neo with a local (windowed) layer whose window is shorter than the sequences
VARIANTS = {
    "gpt-neo-local": ("gpt-neo", {"attention_types": [[["global", "local"], 1], [["local"], 1]], "window_size": 4}),
    # sliding-window layers (their cache keeps the last window only) beside full ones, windows shorter than
    # the sequences
    "gemma3-window": ("gemma3", {"sliding_window": 4, "layer_types": ["sliding_attention", "full_attention",
                                                                      "sliding_attention"]}),
    "mistral-window": ("mistral", {"sliding_window": 5}),
}


def variant(name: str) -> tuple[str, dict]:
    return VARIANTS.get(name, (name, {}))


_MODELS: dict[str, nn.Module] = {}


def model_of(name: str) -> nn.Module:
    """A tiny randomly initialised model (eval, float32), built once per session. Untied heads: at
    this size a tied head mostly echoes the last token, and greedy decoding would repeat one token."""
    if name not in _MODELS:
        family, overrides = variant(name)
        config = tiny_config(family, tie_word_embeddings=False, **overrides)
        _MODELS[name] = build_model(get_family(family), config, seed=11).eval()
    return _MODELS[name]


def adapter_of(name: str) -> ComponentAdapter:
    return load_adapter(get_family(variant(name)[0]), model_of(name))


def tokens(batch: int, length: int, seed: int) -> torch.Tensor:  # (B, T)
    return torch.randint(3, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape
    assert torch.isfinite(a).all() and torch.isfinite(b).all()
    return (a - b).abs().max().item()


def step(
    adapter: ComponentAdapter,
    segments: Sequence[nn.Module],
    ids: torch.Tensor,  # (B, T): the tokens after the cached ones
    cache,
    attention_mask: torch.Tensor | None = None,  # (B, past + T)
    position_ids: torch.Tensor | None = None,  # (B, T)
) -> torch.Tensor:  # (B, T, V)
    """One forward as a hybrid does it: embed, ``prepare`` once, every segment with the context, head."""
    h = adapter.embedding()(ids)
    context = adapter.prepare(h, attention_mask, position_ids, cache)
    for segment in segments:
        h = segment(h, context=context)
    return apply_logit_ops(adapter.lm_head()(h), adapter.logit_ops())


def segments_of(adapter: ComponentAdapter, cuts: Sequence[int] = CUTS) -> list[nn.Module]:
    return [adapter.segment(start, stop) for start, stop in zip(cuts, cuts[1:])]


def generate_positions(mask: torch.Tensor) -> torch.Tensor:  # (B, T) as ``generate`` computes them
    return (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 0)


def left_padded(prompts: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows (1-D) left-padded with token 0: ids (B, P), mask (B, P)."""
    width = max(len(p) for p in prompts)
    ids = torch.zeros(len(prompts), width, dtype=torch.long)
    mask = torch.zeros(len(prompts), width, dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, width - len(p) :] = p
        mask[i, width - len(p) :] = 1
    return ids, mask


def decode_padded(
    adapter: ComponentAdapter, ids: torch.Tensor, mask: torch.Tensor, new: torch.Tensor | int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Prefill a left-padded batch, then one token per step with the mask grown by a column of ones
    and positions continuing from each row's last one (what ``generate`` feeds the model).

    ``new``: the tokens to feed (B, K) (teacher forcing), or a count K of greedy steps.
    Returns (logits (B, P + K, V), generated tokens (B, K))."""
    segments, cache = segments_of(adapter), adapter.new_cache()
    steps = new if isinstance(new, int) else new.shape[1]
    positions = generate_positions(mask)
    logits = [step(adapter, segments, ids, cache, mask, positions)]
    chosen = []
    for k in range(steps):
        token = logits[-1][:, -1].argmax(-1, keepdim=True) if isinstance(new, int) else new[:, k : k + 1]
        chosen.append(token)
        mask = torch.cat([mask, torch.ones_like(token)], dim=1)
        positions = positions[:, -1:] + 1
        logits.append(step(adapter, segments, token, cache, mask, positions))
    return torch.cat(logits, dim=1), torch.cat(chosen, dim=1)


def greedy(adapter: ComponentAdapter, prompt: torch.Tensor, steps: int) -> torch.Tensor:  # (B, steps)
    segments, cache = segments_of(adapter), adapter.new_cache()
    logits, out = step(adapter, segments, prompt, cache), []
    for _ in range(steps):
        token = logits[:, -1].argmax(-1, keepdim=True)
        out.append(token)
        logits = step(adapter, segments, token, cache)
    return torch.cat(out, dim=1)


def own_generate(model: nn.Module, ids: torch.Tensor, steps: int, attention_mask=None) -> torch.Tensor:
    """``model.generate`` greedy, never stopping early (no EOS), new tokens only."""
    saved = model.generation_config  # generate fills unset values from the model's own generation config
    model.generation_config = copy.deepcopy(saved)
    model.generation_config.eos_token_id, model.generation_config.pad_token_id = None, 0
    try:
        out = model.generate(ids, attention_mask=attention_mask, do_sample=False, max_new_tokens=steps)
    finally:
        model.generation_config = saved
    return out[:, ids.shape[1] :]


# ---- 1. incremental = full ------------------------------------------------------------------------


@pytest.mark.parametrize("name", FAMILIES + list(VARIANTS))
def test_incremental_equals_full(name: str) -> None:
    """Prefill 7 tokens, a chunk of 3 after the filled cache, then 6 single tokens: every position's
    logits are the model's own full-sequence ones."""
    adapter, model = adapter_of(name), model_of(name)
    ids = tokens(2, 16, seed=1)
    segments, cache = segments_of(adapter), adapter.new_cache()
    chunks = [ids[:, :7], ids[:, 7:10]] + [ids[:, t : t + 1] for t in range(10, 16)]
    if name == "recurrent-gemma":  # its own forward reads several tokens after a filled cache as a new prompt
        chunks = [ids[:, :10]] + chunks[2:]
    with torch.no_grad():
        reference = model(ids).logits
        logits = torch.cat([step(adapter, segments, chunk, cache) for chunk in chunks], dim=1)
    assert max_diff(logits, reference) <= TOL
    if families()[variant(name)[0]].has_attention:
        assert cache.get_seq_length() == 16


@pytest.mark.parametrize("name", PADDED + list(VARIANTS))
def test_segments_without_layer_zero(name: str) -> None:
    """A hybrid may run only a component's later layers (layer 0's cache then stays empty): past
    length and mask still come from the layers that ran. A left-padded batch, compared with the
    same segments run on the whole sequence without a cache."""
    adapter = adapter_of(name)
    segments = segments_of(adapter, (1, 2, 3))
    h_all = adapter.embedding()(tokens(2, 12, seed=2))  # stands for the hybrid's input to these segments
    mask = torch.ones(2, 12, dtype=torch.long)
    mask[1, :3] = 0
    positions = generate_positions(mask)
    with torch.no_grad():
        full, context = h_all, adapter.prepare(h_all, mask, positions)
        for segment in segments:
            full = segment(full, context=context)
        cache, outs, done = adapter.new_cache(), [], 0
        for chunk in [h_all[:, :5]] + [h_all[:, t : t + 1] for t in range(5, 12)]:
            width = chunk.shape[1]
            context = adapter.prepare(chunk, mask[:, : done + width], positions[:, done : done + width], cache)
            for segment in segments:
                chunk = segment(chunk, context=context)
            outs.append(chunk)
            done += width
    real = mask.bool()
    assert max_diff(torch.cat(outs, dim=1)[real], full[real]) <= TOL
    if isinstance(cache.layers[0], CacheLayerMixin):  # layer 0 holds keys/values, and never ran
        assert cache.layers[0].get_seq_length() == 0 and cache.get_seq_length() == 12


# ---- 2. left-padded batches -----------------------------------------------------------------------


@pytest.mark.parametrize("name", PADDED + list(VARIANTS))
def test_left_padded_batch(name: str) -> None:
    """Two prompts (9 and 5 tokens), left-padded; 5 more tokens one at a time with the mask grown by
    one and positions as ``generate`` makes them. At real positions: the model's own padded forward,
    and each row's unpadded forward."""
    adapter, model = adapter_of(name), model_of(name)
    rows = [tokens(1, 14, seed=3)[0], tokens(1, 10, seed=4)[0]]  # prompt + the 5 tokens fed after it
    ids, mask = left_padded([rows[0][:9], rows[1][:5]])
    new = torch.stack([rows[0][9:], rows[1][5:]])  # (2, 5)
    with torch.no_grad():
        logits, _ = decode_padded(adapter, ids, mask, new)
        full_ids = torch.cat([ids, new], dim=1)
        full_mask = torch.cat([mask, torch.ones_like(new)], dim=1)
        kwargs = {"position_ids": generate_positions(full_mask)} if families()[variant(name)[0]].has_attention else {}
        padded = model(full_ids, attention_mask=full_mask, **kwargs).logits
        real = full_mask.bool()
        assert max_diff(logits[real], padded[real]) <= TOL
        for i, row in enumerate(rows):
            assert max_diff(logits[i][real[i]], model(row[None]).logits[0]) <= TOL


# ---- 3. the family's own generate -----------------------------------------------------------------


@pytest.mark.parametrize("name", FAMILIES + list(VARIANTS))
def test_greedy_matches_generate(name: str) -> None:
    adapter, model = adapter_of(name), model_of(name)
    prompt = tokens(1, 6, seed=5)
    with torch.no_grad():
        assert torch.equal(greedy(adapter, prompt, 10), own_generate(model, prompt, 10))
        # a left-padded batch: generate computes positions from the mask, Mamba drops the mask after prefill
        ids, mask = left_padded([tokens(1, 8, seed=6)[0], tokens(1, 3, seed=7)[0]])
        _, chosen = decode_padded(adapter, ids, mask, 8)
        if name == "rwkv":  # RWKV's own one-token step is right for one row only: generate row by row
            own = torch.cat([own_generate(model, ids[i : i + 1], 8, attention_mask=mask[i : i + 1]) for i in range(2)])
        else:
            own = own_generate(model, ids, 8, attention_mask=mask)
        assert torch.equal(chosen, own)


# ---- 4. caches, contexts, errors ------------------------------------------------------------------


@pytest.mark.parametrize("name", FAMILIES)
def test_new_caches_are_independent(name: str) -> None:
    adapter = adapter_of(name)
    segments = segments_of(adapter)
    ids = tokens(1, 8, seed=8)
    first, second = adapter.new_cache(), adapter.new_cache()
    assert first is not second
    with torch.no_grad():
        a = step(adapter, segments, ids, first)
        if name in ATTENTION:
            assert first.get_seq_length() == 8 and second.get_seq_length() == 0
        else:
            assert first.has_previous_state(0) and not second.has_previous_state(0)
        a_next = step(adapter, segments, ids[:, :1], first)  # advances only the first cache
        b = step(adapter, segments, ids, second)
        b_next = step(adapter, segments, ids[:, :1], second)
    assert torch.equal(a, b) and torch.equal(a_next, b_next)


@pytest.mark.parametrize("name", [name for name in FAMILIES if name != "zamba2"])
def test_context_without_cache_is_the_full_forward(name: str) -> None:
    """``prepare(..., cache=None)`` then ``context=`` computes exactly what the no-context path does (not for
    Zamba2, whose context holds the embeddings: a segment that prepares its own reads its input instead)."""
    adapter = adapter_of(name)
    ids = tokens(2, 10, seed=9)
    mask = torch.ones_like(ids)
    mask[1, :4] = 0
    positions = generate_positions(mask)
    with torch.no_grad():
        for attention_mask, position_ids in [(None, None), (mask, None), (mask, positions)]:
            h = adapter.embedding()(ids)
            context = adapter.prepare(h, attention_mask, position_ids, None)
            assert isinstance(context, StepContext) and context.cache is None
            for start, stop in zip(CUTS, CUTS[1:]):
                segment = adapter.segment(start, stop)
                expected = segment(h, attention_mask=attention_mask, position_ids=position_ids)
                h = segment(h, context=context)
                assert torch.equal(h, expected)


@pytest.mark.parametrize("name", ATTENTION)
def test_prepare_rejects_bad_attention_inputs(name: str) -> None:
    adapter = adapter_of(name)
    segments, cache = segments_of(adapter), adapter.new_cache()
    ids = tokens(1, 6, seed=10)
    with torch.no_grad():
        step(adapter, segments, ids, cache)
        h = adapter.embedding()(ids[:, :1])
        with pytest.raises(ValueError, match="must cover all 7"):
            adapter.prepare(h, torch.ones(1, 1, dtype=torch.long), None, cache)  # only the new token's column
        with pytest.raises(ValueError, match="position_ids"):
            adapter.prepare(h, None, torch.arange(2)[None], cache)
        context = adapter.prepare(h, torch.ones(1, 7, dtype=torch.long), None, cache)
    assert context.past_length == 6 and context.position_ids.tolist() == [[6]]


@pytest.mark.parametrize("name", ["mamba", "mamba2"])
def test_recurrent_families_need_their_own_cache(name: str) -> None:
    adapter = adapter_of(name)
    h = adapter.embedding()(tokens(1, 4, seed=12))
    with pytest.raises(ValueError, match="new_cache"):
        adapter.prepare(h, None, None, DynamicCache())  # key/value layers, no conv/SSM states
    cache = adapter.new_cache()
    mask = torch.tensor([[0, 0, 1, 1, 1, 1]])  # past + T columns
    assert adapter.prepare(h, mask, None, cache).mask.tolist() == [[1, 1, 1, 1]]  # this step's columns
    one = adapter.prepare(h[:, :1], mask[:, :3], None, cache).mask
    # a single new token is never padding: Mamba-2 drops the mask (as transformers does), Mamba keeps its column
    assert one is None if name == "mamba2" else one.tolist() == [[1]]


@pytest.mark.parametrize("name", ["gpt-neo", "gpt2"])
def test_position_table_limits_are_clear_errors(name: str) -> None:
    """GPT-Neo's attention holds at most ``max_position_embeddings`` keys (its ``bias`` buffer), GPT-2's
    default positions end at ``n_positions``: a clear ValueError instead of an index/shape error."""
    adapter = adapter_of(name)
    limit = adapter.config.max_position_embeddings  # 64
    segments, cache = segments_of(adapter), adapter.new_cache()
    with torch.no_grad():
        step(adapter, segments, tokens(1, limit, seed=13), cache)
        h = adapter.embedding()(tokens(1, 1, seed=14))
        with pytest.raises(ValueError, match=f"64 cached \\+ 1 new tokens exceed the {limit}"):
            adapter.prepare(h, None, None, cache)

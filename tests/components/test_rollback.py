"""Caches that forget rejected candidates (assisted generation): after ``activate_past_recording``, candidate
tokens fed in one chunk or one by one, then ``crop(-k)``, leave the cache as if only the kept tokens had been
fed: what follows has the model's own full-sequence logits (transformers' model on the kept sequence, the
independent reference). Attention families drop keys and values; Mamba and Mamba-2 roll their conv and SSM
states back (``components.adapters.rollback``); families whose recurrent state cannot be undone say so.
"""

from __future__ import annotations

import pytest
import torch
from transformers.cache_utils import DynamicLayer, LinearAttentionLayer

from hybridc.components.adapters.rollback import JournaledRecurrentLayer, forgets_tokens
from hybridc.components.registry import families
from tests.components.test_cache import (
    FAMILIES,
    TOL,
    VARIANTS,
    adapter_of,
    max_diff,
    model_of,
    segments_of,
    step,
    tokens,
    variant,
)

# the families whose cache cannot forget tokens: a recurrent state threaded through the loop (RWKV, xLSTM), or
# transformers' own conv/SSM state layers inside a generic family (Falcon-H1, Zamba2; LFM2's convolutions, which
# its tiny test model has none of) or states kept in the modules (RecurrentGemma)
KEEP_STATE = {"rwkv", "xlstm", "falcon-h1", "zamba2", "recurrent-gemma"}
ROLLING = [name for name in FAMILIES if name not in KEEP_STATE] + list(VARIANTS)


@pytest.mark.parametrize("name", FAMILIES)
def test_which_caches_forget_tokens(name: str) -> None:
    cache = adapter_of(name).new_cache()
    assert all(forgets_tokens(layer) for layer in cache.layers) == (name not in KEEP_STATE)
    if name in ("mamba", "mamba2"):
        assert all(isinstance(layer, JournaledRecurrentLayer) for layer in cache.layers)


def test_transformers_own_state_layers_do_not_claim_to_forget() -> None:
    """What a generic family's conv or SSM layers get (LFM2's convolutions, Falcon-H1's Mamba-2 mixers): their
    crop cannot undo an SSM state, so a hybrid refuses assisted generation with them."""
    assert not forgets_tokens(LinearAttentionLayer())
    assert forgets_tokens(DynamicLayer()) and forgets_tokens(JournaledRecurrentLayer())


@pytest.mark.parametrize("name", ROLLING)
def test_cropped_candidates_leave_the_cache_of_the_kept_tokens(name: str) -> None:
    """Prefill 7 tokens; feed 5 candidates in one chunk (as the main model verifies them); forget the last k; feed 3
    more tokens in a chunk and 2 singly: their logits are the model's own on prompt + kept candidates + the 5
    tokens. Then 3 candidates one by one (as a draft model proposes them), forget 2, and 2 more tokens."""
    adapter, model = adapter_of(name), model_of(name)
    prompt, candidates, more = tokens(2, 7, seed=1), tokens(2, 5, seed=2), tokens(2, 5, seed=3)
    again = tokens(2, 3, seed=4)
    segments, cache = segments_of(adapter), adapter.new_cache()
    cache.activate_past_recording()
    forget = 1 + len(name) % 5  # 1..5, varied across the cases
    with torch.no_grad():
        step(adapter, segments, prompt, cache)
        step(adapter, segments, candidates, cache)
        cache.crop(-forget)
        logits = torch.cat([step(adapter, segments, chunk, cache)
                            for chunk in (more[:, :3], more[:, 3:4], more[:, 4:5])], dim=1)
        kept = torch.cat([prompt, candidates[:, : 5 - forget], more], dim=1)
        assert max_diff(logits, model(kept).logits[:, -5:]) <= TOL
        for t in range(3):  # the journal starts again after each crop
            step(adapter, segments, again[:, t : t + 1], cache)
        cache.crop(-2)
        last = step(adapter, segments, more[:, :2], cache)
        assert max_diff(last, model(torch.cat([kept, again[:, :1], more[:, :2]], dim=1)).logits[:, -2:]) <= TOL
    if families()[variant(name)[0]].has_attention:
        assert cache.get_seq_length() == kept.shape[1] + 3


@pytest.mark.parametrize("name", ["gemma3-window", "llama", "mamba", "mamba2"])
def test_a_cache_whose_first_layers_never_run_forgets_too(name: str) -> None:
    """A hybrid may run only a component's later layers (a discretized hybrid that kept its last block): the
    layers that never ran are left alone. Compared with the same segments on the kept sequence without a cache."""
    adapter = adapter_of(name)
    segments = segments_of(adapter, (1, 2, 3))
    h = adapter.embedding()(tokens(1, 16, seed=7))  # stands for the hybrid's input to these segments
    junk = adapter.embedding()(tokens(1, 4, seed=8))
    with torch.no_grad():
        cache, outs = adapter.new_cache(), []
        cache.activate_past_recording()

        def feed(chunk: torch.Tensor) -> torch.Tensor:
            context = adapter.prepare(chunk, None, None, cache)
            for segment in segments:
                chunk = segment(chunk, context=context)
            return chunk

        outs.append(feed(h[:, :9]))
        feed(junk)
        cache.crop(-4)
        outs.append(feed(h[:, 9:12]))
        outs.append(feed(h[:, 12:13]))
        feed(junk[:, :2])
        cache.crop(-2)
        outs.append(feed(h[:, 13:]))
        full, context = h, adapter.prepare(h)
        for segment in segments:
            full = segment(full, context=context)
    assert max_diff(torch.cat(outs, dim=1), full) <= TOL


def test_a_recurrent_layer_forgets_only_after_recording_and_only_what_it_was_fed() -> None:
    adapter = adapter_of("mamba")
    segments, cache = segments_of(adapter), adapter.new_cache()
    with torch.no_grad():
        step(adapter, segments, tokens(1, 4, seed=5), cache)
        with pytest.raises(RuntimeError, match="activate_past_recording"):
            cache.crop(-1)
        cache.activate_past_recording()
        step(adapter, segments, tokens(1, 2, seed=6), cache)
        with pytest.raises(ValueError, match="cannot forget 3 tokens"):
            cache.crop(-3)
        with pytest.raises(ValueError, match="negative"):
            cache.crop(2)

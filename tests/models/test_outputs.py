"""What a hybrid's forward returns besides logits, against the family's own model (the one-hot hybrid of a
component is that component): ``hidden_states`` at the block boundaries, ``attentions`` of every attention layer
(eager), tuples with ``return_dict=False`` in transformers' order, and plain warnings where nothing can be
returned (SDPA, a component without attention)."""

from __future__ import annotations

import warnings

import pytest
import torch

from hybridc.components.pretrained import load_pretrained
from hybridc.components.registry import get_family
from hybridc.models.hybrid import lower
from hybridc.spec import load_spec
from tests.models.test_hybrid import TOLERANCE, ids_and_mask, one_hot_spec
from tests.specs import SMALL, write_spec

LAYERS = 3  # tests.tiny_models' layer count


def one_hot(tmp_path, tiny_pretrained, family: str, split: int):
    directory = tiny_pretrained(family)
    rs = load_spec(write_spec(tmp_path, one_hot_spec(directory, family, split, modes=("own", "own"))))
    own = load_pretrained(get_family(family), directory).eval()
    return lower(rs).eval(), own


@pytest.mark.parametrize("family, split", [("llama", 3), ("gpt2", 1), ("mamba", 3)])
def test_hidden_states_are_the_family_s_at_the_block_boundaries(tmp_path, tiny_pretrained, family, split):
    """The embedding output (the token embedding: GPT-2's position embeddings are its first segment's start work),
    then the stream after each block: the family's own hidden states at the layers where blocks end (the last
    after the final norm, as transformers returns it), zero-padded to the shared width (the other component is
    wider)."""
    hybrid, own = one_hot(tmp_path, tiny_pretrained, family, split)
    ids, mask = ids_and_mask()
    with torch.no_grad():
        ours = hybrid(ids, attention_mask=mask, output_hidden_states=True)
        theirs = own(ids, attention_mask=mask, output_hidden_states=True).hidden_states
        if family == "mamba":  # transformers' Mamba: each layer's output, then the last one again after norm_f
            theirs = (None, *theirs[:-2], theirs[-1])
        theirs = (own.get_input_embeddings()(ids), *theirs[1:])
    assert len(ours.hidden_states) == hybrid.config.num_hidden_layers + 1 == split + 1
    width = hybrid.config.hidden_size
    real = mask.bool()
    own_width = theirs[0].shape[-1]
    assert width > own_width
    for state, layer in zip(ours.hidden_states, range(0, LAYERS + 1, LAYERS // split)):
        assert state.shape == (*ids.shape, width)
        assert (state[..., :own_width] - theirs[layer])[real].abs().max().item() <= TOLERANCE
        assert not state[..., own_width:].any()
    assert hybrid(ids).hidden_states is None


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_attentions_are_the_family_s_with_eager_attention(tmp_path, tiny_pretrained, family):
    hybrid, own = one_hot(tmp_path, tiny_pretrained, family, 3)
    hybrid.set_attn_implementation("eager")  # reaches the components' attention layers
    own.set_attn_implementation("eager")
    ids, mask = ids_and_mask()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("error")
        ours = hybrid(ids, attention_mask=mask, output_attentions=True).attentions
        theirs = own(ids, attention_mask=mask, output_attentions=True).attentions
    assert len(ours) == len(theirs) == LAYERS
    for a, b in zip(ours, theirs):
        assert a.shape == b.shape == (ids.shape[0], 4, ids.shape[1], ids.shape[1])
        assert (a - b).abs().max().item() <= TOLERANCE


def test_attentions_say_plainly_what_they_cannot_return(tmp_path, tiny_pretrained):
    hybrid, _ = one_hot(tmp_path, tiny_pretrained, "llama", 1)
    ids, _ = ids_and_mask()
    with pytest.warns(UserWarning, match=r"component 'own' computes attention with sdpa.*set_attn_implementation"):
        assert hybrid(ids, output_attentions=True).attentions == ()
    (tmp_path / "m").mkdir()
    recurrent, _ = one_hot(tmp_path / "m", tiny_pretrained, "mamba", 1)
    with pytest.warns(UserWarning, match="no component of this hybrid that runs has attention layers"):
        assert recurrent(ids, output_attentions=True).attentions == ()


def test_loaded_eager_reaches_the_components(tmp_path, tiny_pretrained):
    hybrid, _ = one_hot(tmp_path, tiny_pretrained, "llama", 3)
    hybrid.save_pretrained(tmp_path / "saved")
    again = type(hybrid).from_pretrained(tmp_path / "saved", attn_implementation="eager").eval()
    ids, _ = ids_and_mask()
    with torch.no_grad():
        assert len(again(ids, output_attentions=True).attentions) == LAYERS


def test_tuples_in_transformers_order(tmp_path):
    """``return_dict=False`` (or ``config.return_dict = False``): loss, logits, cache, hidden states, attentions,
    each when present, as ``to_tuple()`` of the output object gives them."""
    model = lower(load_spec(write_spec(tmp_path, SMALL)), pretrained=False).eval()
    ids = torch.randint(0, 64, (2, 10), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        full = model(ids, labels=ids, output_hidden_states=True)
        plain = model(ids, labels=ids, output_hidden_states=True, return_dict=False)
        assert isinstance(plain, tuple) and len(plain) == 3
        assert torch.equal(plain[0], full.loss) and torch.equal(plain[1], full.logits)
        assert all(torch.equal(a, b) for a, b in zip(plain[2], full.hidden_states))
        model.config.return_dict = False
        (logits,) = model(ids)
        assert torch.equal(logits, full.logits)
        assert isinstance(model(ids, return_dict=True).logits, torch.Tensor)
        cached = model(ids, use_cache=True)
        assert len(cached) == 2 and cached[1].get_seq_length() == 10  # logits, the HybridCache
        model.config.return_dict = True
        states = model.base_model(ids, output_hidden_states=True)
        assert len(states.hidden_states) == 3 and torch.equal(states.last_hidden_state, full.hidden_states[-1])


def test_a_classifier_returns_hidden_states_too(tmp_path):
    stages = SMALL.split("train:")[0]
    model = lower(load_spec(write_spec(tmp_path, stages + "task: classify(3)\n")), pretrained=False).eval()
    ids = torch.randint(0, 64, (2, 10), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(ids, output_hidden_states=True)
        logits, states = model(ids, output_hidden_states=True, return_dict=False)
    assert out.logits.shape == (2, 3) and len(out.hidden_states) == 3 and torch.equal(logits, out.logits)
    assert all(torch.equal(a, b) for a, b in zip(states, out.hidden_states))

"""Assisted generation of a hybrid: prompt lookup and a draft model give greedy decoding's tokens, the rejected
candidates forgotten by every component's cache (the Mamba and Mamba-2 states rolled back, which transformers'
own stateful models cannot do); a component whose state cannot roll back is refused, named."""

from __future__ import annotations

import textwrap

import pytest
import torch

from hybridc.components.adapters.rollback import JournaledRecurrentLayer
from hybridc.models.export import discretize_model
from hybridc.errors import CompileError
from hybridc.models.hybrid import lower
from hybridc.spec import load_spec
from tests.specs import write_spec

PROMPT = torch.tensor([list(b"the cat sat on the mat; the cat sat on the mat; the cat")])
RUN = {"max_new_tokens": 16, "do_sample": False, "eos_token_id": None, "pad_token_id": 0}


def hybrid(tmp_path, attention: str, recurrent: str, noise: float = 0.3):
    """An attention + recurrent hybrid over bytes whose greedy tokens vary (weights far off their initial values)."""
    heads = "heads: 4, " if recurrent not in ("mamba", "mamba2") else ""
    spec = textwrap.dedent(f"""\
        hybridc: 1
        name: assisted
        tokenizer: bytes
        components:
          attn:
            init: {{family: {attention}, hidden_size: 32, layers: 2, heads: 4, vocab_size: 260, max_length: 128}}
            blocks: split(2)
          ssm:
            init: {{family: {recurrent}, hidden_size: 32, layers: 2, {heads}vocab_size: 260}}
            blocks: split(2)
        hybrid:
          mixture: fixed([[0.6, 0.4], [0.3, 0.7]])
        """)
    model = lower(load_spec(write_spec(tmp_path, spec)), pretrained=False).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(noise * torch.randn(p.shape, generator=g))
    return model


@pytest.fixture
def forgotten(monkeypatch) -> list[int]:
    """The token counts the recurrent layers were asked to forget."""
    counts: list[int] = []
    crop = JournaledRecurrentLayer.crop

    def counting(self, tokens_to_remove):
        counts.append(-tokens_to_remove)
        return crop(self, tokens_to_remove)

    monkeypatch.setattr(JournaledRecurrentLayer, "crop", counting)
    return counts


def test_prompt_lookup_and_draft_models_give_greedy_tokens(tmp_path, forgotten):
    """GPT-NeoX + Mamba-2 here (tests/test_ecosystem.py decodes Llama + Mamba in a process without hybridc)."""
    attention, recurrent = "gpt-neox", "mamba2"
    model = hybrid(tmp_path, attention, recurrent)
    with torch.no_grad():
        greedy = model.generate(PROMPT, **RUN)
        assert len(set(greedy[0, PROMPT.shape[1]:].tolist())) > 5
        looked_up = model.generate(PROMPT, prompt_lookup_num_tokens=3, return_dict_in_generate=True, **RUN)
        assert torch.equal(looked_up.sequences, greedy)
        assert max(forgotten) > 0  # candidates were rejected and rolled back
        # the cache given back records nothing more (a later generate from it keeps no journal)
        journaled = [x for x in looked_up.past_key_values.layers if isinstance(x, JournaledRecurrentLayer)]
        assert journaled and not any(x.journaling or x.journaled_tokens() for x in journaled)
        forgotten.clear()
        draft = discretize_model(model, ["ssm", "attn"]).eval()
        assert torch.equal(model.generate(PROMPT, assistant_model=draft, **RUN), greedy)
        assert max(forgotten) > 1  # the draft's own states rolled back too (it proposed several tokens)
        # drafting for itself: every candidate accepted (the draft's cache then lags and takes several tokens)
        twin = hybrid(tmp_path, attention, recurrent)  # (the same weights: the same spec, seed and noise)
        assert torch.equal(model.generate(PROMPT, assistant_model=twin, **RUN), greedy)


def test_a_component_whose_state_cannot_roll_back_is_refused_by_name(tmp_path):
    model = hybrid(tmp_path, "llama", "rwkv", noise=0.0)
    with pytest.raises(CompileError, match=r"component 'ssm' \(rwkv\) keeps a recurrent state that cannot be rolled"):
        model.generate(PROMPT, prompt_lookup_num_tokens=3, **RUN)
    assert model.generate(PROMPT, max_new_tokens=2).shape[1] == PROMPT.shape[1] + 2  # plain decoding still runs

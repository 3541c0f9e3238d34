"""Generation with per-component caches: prefill + decode are exact, cached = uncached for every family
and for a 3-component hybrid, with greedy, sampling, beam search and left-padded batches."""

from __future__ import annotations

import textwrap

import pytest
import torch

from hybridc.nn.cache import HybridCache
from hybridc.models.hybrid import lower
from hybridc.spec import load_spec
from tests.specs import write_spec

FAMILIES = ["gpt-neo", "gpt2", "gpt-neox", "llama", "mamba", "mamba2"]
PARTNER = {"gpt-neo": "mamba", "gpt2": "llama", "gpt-neox": "mamba2", "llama": "gpt-neo", "mamba": "gpt-neox",
           "mamba2": "gpt2"}


def init(family: str, hidden: int) -> str:
    heads = "heads: 4, " if family not in ("mamba", "mamba2") else ""
    return f"{{family: {family}, hidden_size: {hidden}, layers: 3, {heads}vocab_size: 64, max_length: 64}}"


def hybrid(tmp_path, families, alphas=None, name="gen"):
    comps = "\n".join(f"  c{i}: {{init: {init(f, 32 + 16 * (i % 2))}, blocks: split(2)}}" for i, f in enumerate(families))
    m = len(families)
    row = [round(1.0 / m, 10)] * m
    row[-1] = round(1.0 - sum(row[:-1]), 10)
    mixture = alphas or f"fixed([{row}, {row}])"
    text = f"hybridc: 1\nname: {name}\ncomponents:\n{comps}\nhybrid: {{projector: linear, mixture: '{mixture}'}}\n"
    return lower(load_spec(write_spec(tmp_path, text, f"{name}.yaml"))).eval()


def prompts():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 64, (2, 9), generator=g)
    mask = torch.ones_like(ids)
    ids[1, :4] = 0
    mask[1, :4] = 0  # left padding
    return ids, mask


@pytest.mark.parametrize("family", FAMILIES)
def test_prefill_and_decode_equal_the_full_forward(tmp_path, family):
    model = hybrid(tmp_path, [family, PARTNER[family]])
    ids = torch.randint(0, 64, (2, 14), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = model(ids).logits
        cache = model.new_cache()
        pieces = [model(ids[:, :6], past_key_values=cache, use_cache=True).logits]
        pieces.append(model(ids[:, 6:9], past_key_values=cache, use_cache=True).logits)
        for t in range(9, 14):
            pieces.append(model(ids[:, t:t + 1], past_key_values=cache, use_cache=True).logits)
    assert isinstance(cache, HybridCache) and cache.get_seq_length() == 14
    assert (torch.cat(pieces, dim=1) - full).abs().max().item() <= 1e-5


@pytest.mark.parametrize("family", FAMILIES)
def test_cached_generation_equals_recomputing_the_prefix(tmp_path, family):
    model = hybrid(tmp_path, [family, PARTNER[family]])
    ids, mask = prompts()
    common = dict(attention_mask=mask, max_new_tokens=8, pad_token_id=0, eos_token_id=None)
    with torch.no_grad():
        cached = model.generate(ids, do_sample=False, use_cache=True, **common)
        uncached = model.generate(ids, do_sample=False, use_cache=False, **common)
    assert torch.equal(cached, uncached)
    assert cached.shape == (2, 17)


def test_three_components_greedy_sampling_and_beams(tmp_path):
    model = hybrid(tmp_path, ["gpt2", "mamba", "llama"])
    ids, mask = prompts()
    common = dict(attention_mask=mask, max_new_tokens=6, pad_token_id=0, eos_token_id=None)
    with torch.no_grad():
        for settings in (dict(do_sample=False), dict(do_sample=True, temperature=0.8, top_k=10),
                         dict(do_sample=False, num_beams=3)):
            torch.manual_seed(7)
            cached = model.generate(ids, use_cache=True, **settings, **common)
            torch.manual_seed(7)
            uncached = model.generate(ids, use_cache=False, **settings, **common)
            assert torch.equal(cached, uncached), settings


def test_discretized_hybrid_generates_with_only_its_components(tmp_path):
    from hybridc.models.export import discretize_model

    model = hybrid(tmp_path, ["llama", "mamba"], alphas="fixed([[0.9, 0.1], [0.2, 0.8]])")
    small = discretize_model(model).eval()
    assert small.graph.selection == ("c0", "c1")
    cache = small.new_cache()
    assert set(cache.components) == {"c0", "c1"}
    ids, mask = prompts()
    common = dict(attention_mask=mask, max_new_tokens=5, pad_token_id=0, eos_token_id=None, do_sample=False)
    with torch.no_grad():
        assert torch.equal(small.generate(ids, use_cache=True, **common), small.generate(ids, use_cache=False, **common))


def test_classifiers_do_not_generate(tmp_path):
    from hybridc.errors import CompileError

    text = textwrap.dedent(f"""\
        hybridc: 1
        name: clf
        task: classify(3)
        components:
          a: {{init: {init("llama", 32)}}}
        """)
    model = lower(load_spec(write_spec(tmp_path, text, "clf.yaml"))).eval()
    with pytest.raises(CompileError, match="does not generate"):
        model.generate(torch.ones(1, 3, dtype=torch.long), max_new_tokens=2)

"""The fast decode path (``hybridc.kernels.decode_path``, ``hybridc.kernels.mamba_step``) against the eager one.

The eager path is transformers' own single-token Mamba update and PyTorch's linear maps; the fast path runs
Mamba's update in one C call per layer and a batch's linear maps through hybridc's small-batch kernel. For every
family (a tiny model of it, one-hot in a hybrid beside a tiny Mamba, or Mamba one-hot beside it; and their
discretized and continuous hybrids): greedy decoding of 16 tokens for a batch of 2 gives the same tokens on both
paths, unpadded and left-padded, with logits within float32 rounding; sampling and beam search still run and agree. The
kernels themselves are checked against transformers' ``MambaBlock`` and ``torch.nn.functional.linear``.
"""

from __future__ import annotations

import copy
import re

import pytest
import torch
from transformers import MambaConfig, MambaForCausalLM

from hybridc.components.adapters.rollback import journaled_cache
from hybridc.models.export import discretize_model
from hybridc.kernels import decode_path as decode
from hybridc.kernels import library as kernels
from hybridc.kernels import mamba_step as decode_kernels
from hybridc.models.hybrid import lower
from hybridc.spec import load_spec
from tests.components.test_conformance import VOCAB, spec_text, write
from tests.tiny_models import ALL_FAMILIES

pytestmark = pytest.mark.skipif(not kernels.available(), reason="hybridc's CPU kernels do not build here")

NEW_TOKENS = 16
LOGIT_TOL = 1e-4  # float32 rounding through a few tiny layers (0 to 1e-6 in practice)
# the paper's pair and the common layout in the default suite; every family with -m slow
DEFAULT_FAMILIES = ("gpt-neo", "mamba", "llama")
FAMILIES = [pytest.param(f, marks=() if f in DEFAULT_FAMILIES else pytest.mark.slow) for f in ALL_FAMILIES]


def prompts() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Token ids (2, 9) without padding, the same left-padded (row 0 starts 3 tokens late) and its mask."""
    ids = torch.randint(3, VOCAB, (2, 9), generator=torch.Generator().manual_seed(11))
    mask = torch.ones_like(ids)
    mask[0, :3] = 0
    return ids, ids.masked_fill(mask == 0, 0), mask


def run(model, path: str, ids: torch.Tensor, mask: torch.Tensor | None, **options):
    """``generate`` on the given decode path, never stopping early: (new tokens, per-step logits (steps, B, V))."""
    model.set_decode_path(path)
    config = copy.deepcopy(model.generation_config)
    config.eos_token_id, config.pad_token_id = None, 0
    options = {"do_sample": False, "max_new_tokens": NEW_TOKENS, **options}
    with torch.no_grad():
        out = model.generate(ids, attention_mask=mask, generation_config=config, output_logits=True,
                             return_dict_in_generate=True, **options)
    return out.sequences[:, ids.shape[1]:], torch.stack(out.logits)


def assert_same_decoding(model, single: bool = False) -> None:
    """Fast = eager for a batch of 2, unpadded and left-padded (and ``single``: one sequence, where the linear
    maps take the matrix-vector kernel)."""
    ids, padded, mask = prompts()
    for prompt, prompt_mask in ((ids, None), (padded, mask)) + (((ids[:1], None),) if single else ()):
        fast_tokens, fast_logits = run(model, "fast", prompt, prompt_mask)
        eager_tokens, eager_logits = run(model, "eager", prompt, prompt_mask)
        assert torch.equal(fast_tokens, eager_tokens)
        assert (fast_logits - eager_logits).abs().max().item() <= LOGIT_TOL


@pytest.fixture(scope="module")
def hybrids(tiny_pretrained, tmp_path_factory):
    """``(family, on_family) -> HybridModel``: one-hot on the family (or on Mamba beside it), built once."""
    built = {}

    def get(family: str, on_family: bool):
        if (family, on_family) not in built:
            where = tmp_path_factory.mktemp(f"decode-{family}")
            text = spec_text(family, tiny_pretrained(family), tiny_pretrained("mamba"), on_family)
            built[family, on_family] = lower(load_spec(write(where, text))).eval()
        return built[family, on_family]

    return get


@pytest.mark.parametrize("family", FAMILIES)
def test_the_fast_path_decodes_as_the_eager_one(family: str, hybrids) -> None:
    assert_same_decoding(hybrids(family, True))


def test_the_fast_path_decodes_mamba_beside_a_family_as_the_eager_one(hybrids) -> None:
    assert_same_decoding(hybrids("llama", False))


@pytest.mark.parametrize("selection", [None, "discretized"])
def test_continuous_and_discretized_hybrids_of_two_families(selection, tiny_pretrained, tmp_path) -> None:
    """Both components running in every block (fixed alphas), or one per block after discretizing."""
    text = spec_text("llama", tiny_pretrained("llama"), tiny_pretrained("mamba"), True)
    text = re.sub(r"mixture: fixed\(.*\)", "mixture: fixed([[0.6, 0.4], [0.4, 0.6]])", text)
    model = lower(load_spec(write(tmp_path, text))).eval()
    assert not model.graph.discretized and len(model._running(model._mixtures())) == 2
    if selection:
        names = model.graph.names
        model = discretize_model(model, [names[0], names[1]]).eval()
    assert_same_decoding(model, single=True)


def test_sampling_and_beams_run_on_the_fast_path(hybrids) -> None:
    model = hybrids("gpt-neo", False)  # Mamba one-hot: its C step runs
    ids, padded, mask = prompts()
    torch.manual_seed(3)
    fast, _ = run(model, "fast", padded, mask, do_sample=True, temperature=0.8, top_k=20)
    torch.manual_seed(3)
    eager, _ = run(model, "eager", padded, mask, do_sample=True, temperature=0.8, top_k=20)
    assert torch.equal(fast, eager)
    fast, _ = run(model, "fast", padded, mask, num_beams=3)
    eager, _ = run(model, "eager", padded, mask, num_beams=3)
    assert torch.equal(fast, eager)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("conv_bias", [True, False])
def test_the_mamba_step_kernel_is_transformers_update(dtype, conv_bias) -> None:
    """One layer, batch 3, several steps, a padding mask on one of them: the block's outputs and both states."""
    config = MambaConfig(hidden_size=40, num_hidden_layers=1, state_size=6, expand=2, conv_kernel=3, vocab_size=50,
                         use_conv_bias=conv_bias, time_step_rank=5)
    torch.manual_seed(0)
    block = MambaForCausalLM(config).to(dtype).eval().backbone.layers[0]
    caches = [journaled_cache(config) for _ in range(2)]
    prefill = torch.randn(3, 5, 40, dtype=dtype)
    with torch.no_grad():
        for cache in caches:
            block(prefill, cache_params=cache)
        for step in range(4):
            h = torch.randn(3, 1, 40, dtype=dtype)
            mask = torch.tensor([[1], [0], [1]]) if step == 2 else None
            assert decode_kernels.supports(block, h, caches[1])
            expected = block(h, cache_params=caches[0], attention_mask=mask)
            ours = decode_kernels.mamba_block_step(block, h, caches[1], mask)
            tol = 1e-5 if dtype == torch.float32 else 1e-6  # (transformers computes A in float32)
            torch.testing.assert_close(ours, expected, rtol=tol, atol=tol)
            for name in ("conv_states", "recurrent_states"):
                torch.testing.assert_close(getattr(caches[1].layers[0], name)[0], getattr(caches[0].layers[0], name)[0],
                                           rtol=tol, atol=tol)


def test_the_step_kernel_steps_aside_where_it_cannot_run() -> None:
    config = MambaConfig(hidden_size=16, num_hidden_layers=1, state_size=4, vocab_size=20)
    block = MambaForCausalLM(config).eval().backbone.layers[0]
    cache = journaled_cache(config)
    with torch.no_grad():
        block(torch.randn(1, 3, 16), cache_params=cache)
        assert decode_kernels.supports(block, torch.randn(1, 1, 16), cache)
        assert not decode_kernels.supports(block, torch.randn(1, 2, 16), cache)  # several tokens: the scan
        assert not decode_kernels.supports(block, torch.randn(1, 1, 16, dtype=torch.bfloat16), cache)
    assert not decode_kernels.supports(block, torch.randn(1, 1, 16), cache)  # gradients wanted


@pytest.mark.parametrize("rows,k,n,bias", [(1, 16, 7, True), (2, 37, 5, False), (8, 64, 33, True), (16, 3, 4, True)])
def test_the_small_linear_kernel_is_torch_s_linear(rows, k, n, bias) -> None:
    g = torch.Generator().manual_seed(rows * k + n)
    x, weight = torch.randn(rows, 1, k, generator=g), torch.randn(n, k, generator=g)
    b = torch.randn(n, generator=g) if bias else None
    assert decode._takes(x, weight, b)
    with torch.no_grad(), decode.small_linears():
        ours = torch.nn.functional.linear(x, weight, b)
    torch.testing.assert_close(ours, torch.nn.functional.linear(x, weight, b), rtol=1e-5, atol=1e-5)
    wide = x.double()
    with torch.no_grad(), decode.small_linears():
        ours = torch.nn.functional.linear(wide, weight.double(), None if b is None else b.double())
    torch.testing.assert_close(ours, torch.nn.functional.linear(wide, weight.double(), None if b is None else b.double()))


def test_an_unknown_decode_path_is_refused(hybrids) -> None:
    with pytest.raises(ValueError, match="unknown decode path"):
        hybrids("llama", True).set_decode_path("turbo")


def test_the_step_and_linear_operators_pass_opcheck() -> None:
    """What torch.compile and torch.export trace: the schema (the states declared mutated), the fake
    implementations against the real ones."""
    g = torch.Generator().manual_seed(5)
    f = {"generator": g, "dtype": torch.float64}
    b, I, N, R, K = 2, 12, 3, 2, 4
    args = (torch.randn(b, 2 * I, **f), torch.tensor([1.0, 0.0], dtype=torch.float64), torch.randn(b, I, K, **f),
            torch.randn(b, I, N, **f), torch.randn(I, K, **f), torch.randn(I, **f), torch.randn(R + 2 * N, I, **f),
            torch.randn(I, R, **f), torch.randn(I, **f), torch.randn(I, N, **f), torch.randn(I, **f))
    result = torch.library.opcheck(torch.ops.hybridc.mamba_step.default, args)
    assert set(result.values()) == {"SUCCESS"}
    x, weight, bias = torch.randn(3, 1, 7, **f), torch.randn(5, 7, **f), torch.randn(5, **f)
    result = torch.library.opcheck(torch.ops.hybridc.small_linear.default, (x, weight, bias))
    assert set(result.values()) == {"SUCCESS"}

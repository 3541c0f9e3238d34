"""bfloat16 (weights, and autocast in training) and gradient checkpointing, through every kind of block.

Hybrids of an attention family and a recurrent one (the fast Mamba scan, and Mamba-2), continuous (mixed
embeddings, heads and branches) and discretized (projectors where the component changes).
"""

from __future__ import annotations

import textwrap

import pytest
import torch

from hybridc.models.hybrid import HybridModel, lower
from hybridc.spec import load_spec
from hybridc.train.run import TrainOptions, train
from tests.specs import write_spec
from tests.train.helpers import DATA

PAIRS = [("llama", "mamba"), ("gpt-neox", "mamba2"), ("qwen3", "falcon-h1")]


def spec(attention: str, recurrent: str, mixture: str = "fixed([[0.6, 0.4], [0.3, 0.7]])") -> str:
    sizes = {"falcon-h1": ", heads: 4, max_length: 64, mamba_d_state: 16, mamba_chunk_size: 16"}.get(recurrent, "")
    return textwrap.dedent(f"""\
        hybridc: 1
        name: precision
        components:
          attn:
            init: {{family: {attention}, hidden_size: 32, layers: 2, heads: 4, vocab_size: 64, max_length: 64}}
            blocks: split(2)
          ssm:
            init: {{family: {recurrent}, hidden_size: 24, layers: 2, vocab_size: 64{sizes}}}
            blocks: split(2)
        hybrid:
          projector: {{attn: linear, ssm: mlp}}
          mixture: {mixture}
        """)


def ids(seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 64, (2, 24), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(("attention", "recurrent"), PAIRS)
@pytest.mark.parametrize("selection", [None, ["ssm", "attn"]])
def test_bf16_weights_give_the_float32_logits_within_bf16_rounding(tmp_path, attention, recurrent, selection):
    model = lower(load_spec(write_spec(tmp_path, spec(attention, recurrent))), selection=selection, pretrained=False)
    model.save_pretrained(tmp_path / "saved")
    full = HybridModel.from_pretrained(tmp_path / "saved").eval()
    half = HybridModel.from_pretrained(tmp_path / "saved", dtype=torch.bfloat16).eval()
    assert all(p.dtype == torch.bfloat16 for p in half.parameters())
    x = ids()
    mask = torch.ones_like(x)
    mask[1, :5] = 0
    with torch.no_grad():
        for attention_mask in (None, mask):
            a = full(x, attention_mask=attention_mask).logits
            b = half(x, attention_mask=attention_mask).logits
            assert b.dtype == torch.bfloat16
            scale = a.abs().max().item()
            assert (b.float() - a).abs().max().item() <= 0.05 * scale  # bf16 keeps 8 bits of mantissa
            assert (b.float() - a).abs().max().item() > 0  # (it did compute in bfloat16)


@pytest.mark.parametrize(("attention", "recurrent"), PAIRS)
def test_bf16_autocast_trains_close_to_float32(tmp_path, attention, recurrent):
    """One training step's loss and gradients under CPU bf16 autocast, against float32."""
    model = lower(load_spec(write_spec(tmp_path, spec(attention, recurrent, "search"))), pretrained=False).train()
    x = ids(1)
    torch.manual_seed(0)
    loss32 = model(x, labels=x).loss
    loss32.backward()
    grads32 = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    torch.manual_seed(0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss16 = model(x, labels=x).loss
    loss16.backward()
    assert abs(loss16.item() - loss32.item()) <= 0.02 * loss32.item()
    for name, grad in grads32.items():
        other = dict(model.named_parameters())[name].grad
        assert other is not None and torch.isfinite(other).all(), name
        assert other.dtype == torch.float32  # autocast keeps the parameters (and their gradients) in float32


@pytest.mark.parametrize(("attention", "recurrent"), PAIRS)
def test_gradient_checkpointing_recomputes_every_layer_and_changes_no_gradient(tmp_path, attention, recurrent):
    rs = load_spec(write_spec(tmp_path, spec(attention, recurrent, "search")))
    plain, checkpointed = lower(rs, pretrained=False).train(), lower(rs, pretrained=False).train()
    checkpointed.activation_checkpointing_enable()
    calls: list[str] = []
    for model in (plain, checkpointed):  # every linear map inside a component layer counts its calls
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Linear) and ".segments." in name:
                module.register_forward_pre_hook(lambda m, a, name=name: calls.append(name))
    x = ids(2)
    counts = []
    for model in (plain, checkpointed):
        calls.clear()
        torch.manual_seed(0)
        model(x, labels=x).loss.backward()
        counts.append({name: calls.count(name) for name in set(calls)})
    assert counts[0] and set(counts[0].values()) == {1}
    assert counts[1] == {name: 2 for name in counts[0]}  # every layer ran again in the backward pass
    grads = dict(plain.named_parameters())
    for name, p in checkpointed.named_parameters():
        if p.grad is not None:
            assert (p.grad - grads[name].grad).abs().max().item() <= 1e-5, name


def test_train_with_mixed_precision_bf16(tmp_path):
    """``hybridc train --mixed-precision bf16`` (Accelerate's autocast): a search and a retrain run through."""
    stages = textwrap.indent(textwrap.dedent(f"""\
        - {{name: search, data: '{DATA}', steps: 3}}
        - {{name: discretize}}
        - {{name: retrain, steps: 2}}
        """), "    ")
    text = spec("llama", "mamba", "search") + "train:\n  seed: 1\n  checkpoint_every: 0\n  stages:\n" + stages
    result = train(load_spec(write_spec(tmp_path, text)), TrainOptions(out_dir=tmp_path / "run", quiet=True,
                                                                        mixed_precision="bf16"), say=lambda m: None)
    assert result.test is not None and torch.isfinite(torch.tensor(result.test["loss"]))

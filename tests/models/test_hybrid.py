"""Lowering: the one-hot invariant for every family, parameter counts, heads, save/load, discretization."""

from __future__ import annotations

import textwrap

import pytest
import torch

from hybridc.components.pretrained import load_pretrained
from hybridc.components.registry import get_family
from hybridc.models.hybrid import HybridModel, lower
from hybridc.models.names import group_of
from hybridc.spec import load_spec
from tests.specs import SMALL, write_spec

FAMILIES = ["gpt-neo", "gpt2", "gpt-neox", "llama", "mamba", "mamba2"]
PARTNER = {"gpt-neo": "mamba", "gpt2": "llama", "gpt-neox": "mamba2", "llama": "gpt-neo", "mamba": "gpt-neox",
           "mamba2": "gpt2"}
TOLERANCE = 1e-5


def one_hot_spec(directory, family, split, projector="mlp", modes=("own", "mix"), selected="own"):
    """A 2-component hybrid: 'own' is the tiny pretrained model of ``family`` (local dir), 'other' a
    wider from-scratch model of a different family; every block's alpha is one-hot on ``selected``."""
    partner = PARTNER[family]
    heads = "heads: 4, " if partner not in ("mamba", "mamba2") else ""
    row = "[1.0, 0.0]" if selected == "own" else "[0.0, 1.0]"
    embeddings, head = modes
    return textwrap.dedent(f"""\
        hybridc: 1
        name: one-hot
        tokenizer: own
        components:
          own:
            from: {directory}
            blocks: split({split})
          other:
            init: {{family: {partner}, hidden_size: 48, layers: 3, {heads}vocab_size: 96, max_length: 64}}
            blocks: split({split})
        hybrid:
          projector: {projector}
          embeddings: {embeddings}
          head: {head}
          mixture: fixed([{", ".join([row] * split)}])
        """)


def ids_and_mask(batch=2, length=12, vocab=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (batch, length), generator=g)
    mask = torch.ones(batch, length, dtype=torch.long)
    mask[1, :3] = 0  # left padding in the second row
    return ids, mask


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("split", [1, 2, 3])
def test_one_hot_hybrid_equals_the_component(tmp_path, tiny_pretrained, family, split):
    directory = tiny_pretrained(family)
    rs = load_spec(write_spec(tmp_path, one_hot_spec(directory, family, split, modes=("mix", "mix"))))
    hybrid = lower(rs).eval()
    own = load_pretrained(get_family(family), directory).eval()
    ids, mask = ids_and_mask()
    with torch.no_grad():
        assert (hybrid(ids).logits - own(ids).logits).abs().max().item() <= TOLERANCE
        padded = (hybrid(ids, attention_mask=mask).logits - own(ids, attention_mask=mask).logits)
        assert padded[mask.bool()].abs().max().item() <= TOLERANCE


@pytest.mark.parametrize("family", ["gpt-neox", "mamba"])
@pytest.mark.parametrize("projector", ["linear", "linear-skip", "mlp", "mlp-skip", "none"])
def test_one_hot_invariant_holds_for_every_projector(tmp_path, tiny_pretrained, family, projector):
    directory = tiny_pretrained(family)
    rs = load_spec(write_spec(tmp_path, one_hot_spec(directory, family, 2, projector, modes=("own", "own"))))
    hybrid = lower(rs).eval()
    own = load_pretrained(get_family(family), directory).eval()
    ids, _ = ids_and_mask()
    with torch.no_grad():
        assert (hybrid(ids).logits - own(ids).logits).abs().max().item() <= TOLERANCE


def test_one_hot_on_the_wider_from_scratch_component(tmp_path, tiny_pretrained):
    """Selecting the other (wider, random) component gives that component's own logits."""
    from hybridc.components.adapters import build_model
    from hybridc.models.component_models import derived_seed

    rs = load_spec(write_spec(tmp_path, one_hot_spec(tiny_pretrained("llama"), "llama", 3, modes=("other", "other"),
                                                     selected="other").replace("tokenizer: own", "tokenizer: other")))
    hybrid = lower(rs).eval()
    rc = rs.component("other")
    other = build_model(get_family(rc.family), rc.config, seed=derived_seed(rs.spec.train.seed, "component", "other"))
    ids, _ = ids_and_mask()
    with torch.no_grad():
        assert (hybrid(ids).logits - other.eval()(ids).logits).abs().max().item() <= TOLERANCE


def test_parameters_match_the_graph_and_groups(tmp_path):
    rs = load_spec(write_spec(tmp_path, SMALL.replace("fixed([[0.5, 0.5], [0.25, 0.75]])", "search")))
    model = lower(rs)
    assert sum(p.numel() for p in model.parameters()) == model.graph.total_params
    groups = model.param_groups()
    counts = {g: sum(p.numel() for _, p in ps) for g, ps in groups.items()}
    assert counts == model.graph.params_by_group()
    assert counts["alphas"] == 2 * 2
    assert group_of("blocks.1.mix.logits") == "alphas"


def test_alphas_are_on_the_simplex(tmp_path):
    rs = load_spec(write_spec(tmp_path, SMALL.replace("fixed([[0.5, 0.5], [0.25, 0.75]])", "search")))
    model = lower(rs)
    with torch.no_grad():
        for block in model.blocks:
            block.mix.logits.normal_()
    a = model.alphas()
    assert a.shape == (2, 2) and torch.all(a >= 0) and torch.allclose(a.sum(-1), torch.ones(2))
    fixed = lower(load_spec(write_spec(tmp_path, SMALL))).alphas()
    assert fixed.tolist() == [[0.5, 0.5], [0.25, 0.75]]


def test_loss_and_shapes_per_task(tmp_path):
    ids, mask = ids_and_mask(vocab=64)
    lm = lower(load_spec(write_spec(tmp_path, SMALL)))
    out = lm(ids, attention_mask=mask, labels=ids)
    assert out.logits.shape == (2, 12, 64) and out.loss.ndim == 0 and torch.isfinite(out.loss)
    out.loss.backward()
    assert all(p.grad is not None for p in lm.parameters() if p.requires_grad)
    stages = SMALL.split("train:")[0]
    clf = lower(load_spec(write_spec(tmp_path, stages + "task: classify(3)\n")))
    out = clf(ids, attention_mask=mask, labels=torch.tensor([0, 2]))
    assert out.logits.shape == (2, 3) and torch.isfinite(out.loss)
    tag = lower(load_spec(write_spec(tmp_path, stages + "task: tag(5)\n")))
    assert tag(ids).logits.shape == (2, 12, 5)


def test_classifier_pools_the_last_real_token(tmp_path):
    stages = SMALL.split("train:")[0]
    clf = lower(load_spec(write_spec(tmp_path, stages + "task: classify(3)\n"))).eval()
    ids, _ = ids_and_mask(vocab=64)
    right_padded = torch.cat([ids, torch.zeros(2, 4, dtype=torch.long)], dim=1)
    mask = torch.cat([torch.ones(2, 12), torch.zeros(2, 4)], dim=1).long()
    with torch.no_grad():
        assert torch.allclose(clf(ids).logits, clf(right_padded, attention_mask=mask).logits, atol=1e-5)


def test_save_and_reload(tmp_path):
    rs = load_spec(write_spec(tmp_path, SMALL.replace("fixed([[0.5, 0.5], [0.25, 0.75]])", "search")))
    model = lower(rs).eval()
    with torch.no_grad():
        model.blocks[0].mix.logits.copy_(torch.tensor([0.3, -0.2]))
    model.save_pretrained(tmp_path / "saved")
    assert (tmp_path / "saved" / "model.safetensors").exists()
    again = HybridModel.from_pretrained(tmp_path / "saved").eval()
    ids, mask = ids_and_mask(vocab=64)
    with torch.no_grad():
        assert torch.equal(model(ids, attention_mask=mask).logits, again(ids, attention_mask=mask).logits)
    assert torch.equal(model.alphas(), again.alphas())
    assert again.resolved_spec.spec == rs.spec


def test_same_seed_same_model_other_seed_other_model(tmp_path):
    a = lower(load_spec(write_spec(tmp_path, SMALL, "a.yaml")))
    b = lower(load_spec(write_spec(tmp_path, SMALL, "b.yaml")))
    c = lower(load_spec(write_spec(tmp_path, SMALL.replace("stages:", "seed: 1\n  stages:"), "c.yaml")))
    pa, pb, pc = (torch.cat([p.flatten() for p in m.parameters()]) for m in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)


def test_a_single_component_spec_is_the_plain_model(tmp_path, tiny_pretrained):
    """One component, one block: the pipeline yields the component itself (how baselines are run)."""
    directory = tiny_pretrained("gpt2")
    rs = load_spec(write_spec(tmp_path, f"hybridc: 1\nname: plain\ncomponents:\n  gpt:\n    from: {directory}\n"))
    model = lower(rs).eval()
    assert model.graph.mixture == "search" and len(model.blocks) == 1
    own = load_pretrained(get_family("gpt2"), directory).eval()
    ids, mask = ids_and_mask()
    with torch.no_grad():
        assert (model(ids).logits - own(ids).logits).abs().max().item() <= TOLERANCE

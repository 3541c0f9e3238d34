"""Components under the hybrid's tokenizer: `vocab: transplant` moves pretrained rows by token string,
`vocab: new` is a fresh embedding that align trains and final/ keeps."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from hybridc.components.adapters import build_model
from hybridc.components.pretrained import load_pretrained
from hybridc.components.registry import get_family
from hybridc.models.hybrid import HybridModel, lower
from hybridc.spec import load_spec
from hybridc.train.run import TrainOptions, train
from tests.spec.test_vocab import TEXT_A, TEXT_B, save_tokenizer
from tests.specs import write_spec
from tests.tiny_models import tiny_config


def pretrained(directory: Path, family: str, texts: list[str], seed: int) -> Path:
    build_model(get_family(family), tiny_config(family), seed=seed).save_pretrained(directory)
    save_tokenizer(directory, texts)
    return directory


def spec(tmp_path: Path, b_family: str, vocab: str, b_texts=TEXT_B, extra: str = "") -> Path:
    a = pretrained(tmp_path / "a", "gpt-neo", TEXT_A, seed=1)
    b = pretrained(tmp_path / "b", b_family, b_texts, seed=2)
    return write_spec(tmp_path, textwrap.dedent(f"""\
        hybridc: 1
        name: vocab
        tokenizer: a
        components:
          a: {{from: {a}, blocks: split(1)}}
          b: {{from: {b}, blocks: split(1), vocab: {vocab}}}
        """) + extra)


@pytest.mark.parametrize("family", ["mamba", "gpt-neox"])  # tied head / untied head
def test_a_transplanted_row_is_the_source_row_of_the_same_token(tmp_path, family):
    model = lower(load_spec(spec(tmp_path, family, "transplant")))
    own = load_pretrained(get_family(family), tmp_path / "b")
    hybrid_vocab = AutoTokenizer.from_pretrained(tmp_path / "a").get_vocab()
    own_vocab = AutoTokenizer.from_pretrained(tmp_path / "b").get_vocab()
    shared = sorted(set(hybrid_vocab) & set(own_vocab))
    assert 2 <= len(shared) < len(hybrid_vocab)
    embedding = model.embed.sources["b"].weight
    head = model.head.heads["b"].weight
    for token in shared:
        assert torch.equal(embedding[hybrid_vocab[token]], own.get_input_embeddings().weight[own_vocab[token]])
        assert torch.equal(head[hybrid_vocab[token]], own.get_output_embeddings().weight[own_vocab[token]])
    assert (head is embedding) == (family == "mamba")
    # the other layers are the pretrained ones
    assert torch.equal(model.blocks[0].segments["b"].layers[0].norm.weight if family == "mamba" else
                       model.blocks[0].segments["b"].layers[0].input_layernorm.weight,
                       own.backbone.layers[0].norm.weight if family == "mamba" else
                       own.gpt_neox.layers[0].input_layernorm.weight)


def test_with_agreeing_tokenizers_a_transplanted_component_is_itself_on_the_tokenizers_ids(tmp_path):
    """One-hot on a transplanted component whose tokenizer is the hybrid's gives its own logits at every
    id the tokenizer produces (the rows past the tokenizer are the mean of its rows, not its own)."""
    path = spec(tmp_path, "mamba", "transplant", b_texts=TEXT_A, extra=textwrap.dedent("""\
        hybrid: {embeddings: b, head: b, mixture: "fixed([[0.0, 1.0]])"}
        """))
    model = lower(load_spec(path)).eval()
    own = load_pretrained(get_family("mamba"), tmp_path / "b").eval()
    size = len(AutoTokenizer.from_pretrained(tmp_path / "a"))
    ids = torch.randint(0, size, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (model(ids).logits[..., :size] - own(ids).logits[..., :size]).abs().max().item() <= 1e-5


def test_a_new_embedding_is_trained_by_align_and_saved(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(" ".join(TEXT_A * 80))
    path = spec(tmp_path, "llama", "new", extra=textwrap.dedent(f"""\
        train:
          checkpoint_every: 0
          stages:
            - {{name: align, data: "text({corpus}, block=16)", steps: 3, batch_size: 4, lr: 0.01}}
        """))
    rs = load_spec(path)
    initial = lower(rs).embed.sources["b"].weight.detach().clone()
    assert abs(initial.std().item() - 0.02) < 0.005 and initial.shape[0] == rs.vocab_size
    result = train(rs, TrainOptions(out_dir=tmp_path / "run", quiet=True), say=lambda _: None)
    saved = HybridModel.from_pretrained(result.final_dir)
    trained = saved.embed.sources["b"].weight
    assert not torch.equal(trained, initial)  # align trained it
    assert saved.head.heads["b"].weight is trained  # tied to it, also after loading
    lock = json.loads((result.final_dir / "config.json").read_text())["lock"]
    (b,) = [c for c in lock["resolved"]["components"] if c["name"] == "b"]
    assert b["config"]["vocab_size"] == rs.vocab_size and b["config"]["tie_word_embeddings"] is True

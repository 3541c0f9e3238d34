"""task: match(n): LRA's dual-encoder features [u, v, u*v, u-v], checked by hand; each document of a pair is
encoded alone and pooled at its last real token, whatever the padding; the model saves and loads as a
sequence classifier."""

from __future__ import annotations

import textwrap

import torch

from hybridc.nn.blocks import MatchHead
from hybridc.models.hybrid import lower
from hybridc.spec import load_spec
from tests.specs import write_spec

SPEC = textwrap.dedent("""\
    hybridc: 1
    name: pairs
    components:
      attn: {init: {family: gpt-neo, hidden_size: 16, layers: 2, heads: 2, vocab_size: 257, max_length: 64}, blocks: split(2)}
      ssm: {init: {family: mamba, hidden_size: 16, layers: 2, vocab_size: 257}, blocks: split(2)}
    hybrid: {mixture: "fixed([[0.3, 0.7], [0.6, 0.4]])"}
    task: match(2)
    """)


def test_features_by_hand():
    u = torch.tensor([[1.0, 2.0], [0.5, -1.0]])
    v = torch.tensor([[3.0, -1.0], [2.0, 4.0]])
    assert MatchHead.features(u, v).tolist() == [[1, 2, 3, -1, 3, -2, -2, 3], [0.5, -1, 2, 4, 1, -4, -1.5, -5]]


def test_each_document_is_encoded_alone_and_pooled_at_its_last_byte(tmp_path):
    model = lower(load_spec(write_spec(tmp_path, SPEC))).eval()
    g = torch.Generator().manual_seed(0)
    docs = [torch.randint(0, 256, (n,), generator=g) for n in (5, 9, 9, 3)]  # pairs (0, 1) and (2, 3)
    width = 9
    ids = torch.full((2, 2 * width), 256)
    mask = torch.zeros((2, 2 * width), dtype=torch.long)
    for k, doc in enumerate(docs):
        row, half = divmod(k, 2)
        ids[row, half * width: half * width + len(doc)] = doc
        mask[row, half * width: half * width + len(doc)] = 1
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits  # (2, 2)
        # by hand: each document alone, unpadded, its last state; the head's layers on [u, v, u*v, u-v]
        last = [model.hidden_states(doc[None])[0, -1] for doc in docs]
        expected = torch.stack([model.head.mlp(torch.cat([u, v, u * v, u - v]))
                                for u, v in ((last[0], last[1]), (last[2], last[3]))])
    assert logits.shape == (2, 2)
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)
    loss = model(input_ids=ids, attention_mask=mask, labels=torch.tensor([1, 0])).loss
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(expected, torch.tensor([1, 0])), atol=1e-5, rtol=1e-5)


def test_a_match_hybrid_loads_as_a_sequence_classifier(tmp_path):
    from transformers import AutoModelForSequenceClassification

    model = lower(load_spec(write_spec(tmp_path, SPEC))).eval()
    model.save_pretrained(tmp_path / "saved")
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "saved").eval()
    ids = torch.randint(0, 256, (3, 12))
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=ids).logits, model(input_ids=ids).logits)

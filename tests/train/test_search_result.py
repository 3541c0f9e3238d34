"""The paper's qualitative search result on a small case.

Two tiny GPT-NeoX models are pretrained on different character maps (A continues a string by the
permutation X, B by the permutation Y). On text that mixes both kinds of strings, architecture search
over a one-block hybrid of A and B ends with alphas strictly inside the simplex, and the hybrid's
validation loss is at least as low as either component fine-tuned alone with the same budget.
"""

from __future__ import annotations

import json
import random
import textwrap

import pytest
import torch

from hybridc.components.adapters import build_model
from hybridc.components.registry import get_family
from hybridc.data.tokenizer import ByteTokenizer
from hybridc.spec import load_spec
from hybridc.train.run import TrainOptions, train
from tests.specs import write_spec

LETTERS = "abcdefghijklmnop"


def maps(seed: int = 0) -> tuple[dict[str, str], dict[str, str]]:
    rng = random.Random(seed)
    while True:
        x, y = list(LETTERS), list(LETTERS)
        rng.shuffle(x)
        rng.shuffle(y)
        if all(a != b for a, b in zip(x, y)):
            return dict(zip(LETTERS, x)), dict(zip(LETTERS, y))


def documents(mapping: dict[str, str], n: int, rng: random.Random, length: int = 12) -> list[str]:
    docs = []
    for _ in range(n):
        c = rng.choice(LETTERS)
        doc = [c]
        for _ in range(length - 1):
            c = mapping[c]
            doc.append(c)
        docs.append("".join(doc))
    return docs


def pretrain(mapping: dict[str, str], directory, seed: int) -> None:
    """A plain transformers model trained on strings of one map, saved with save_pretrained."""
    family = get_family("gpt-neox")
    config = family.init_config({"hidden_size": 32, "layers": 2, "heads": 2, "vocab_size": 259, "max_length": 64}, {})
    model = build_model(family, config, seed=seed)
    tok = ByteTokenizer()
    rng = random.Random(seed)
    stream = []
    for doc in documents(mapping, 3000, rng):
        stream += tok.encode(doc) + [tok.eos_id]
    blocks = torch.tensor(stream[: len(stream) // 32 * 32]).view(-1, 32)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in range(150):
        batch = blocks[torch.randint(0, len(blocks), (16,), generator=g)]
        loss = model(batch, labels=batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.save_pretrained(directory)


def last_valid_loss(run_dir) -> float:
    events = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [e for e in events if e["event"] == "eval" and e["split"] == "valid"][-1]["loss"]


@pytest.mark.slow  # CI's long part runs it (.ci/run): it keeps the default suite under 10 minutes
def test_search_keeps_both_components_and_beats_each_alone(tmp_path):
    x, y = maps()
    pretrain(x, tmp_path / "a", seed=1)
    pretrain(y, tmp_path / "b", seed=2)
    rng = random.Random(3)
    docs = documents(x, 400, rng) + documents(y, 400, rng)
    rng.shuffle(docs)
    (tmp_path / "mixed.txt").write_text("\n".join(docs) + "\n")
    spec = textwrap.dedent("""\
        hybridc: 1
        name: mixed
        tokenizer: bytes
        components:
          a: {from: a}
          b: {from: b}
        hybrid: {projector: linear, mixture: search}
        train:
          seed: 0
          checkpoint_every: 0
          baselines: true
          stages:
            - {name: search, search: "darts(lr=0.05)", data: "text(mixed.txt, block=32)", steps: 120, lr: 3e-3,
               batch_size: 16}
        """)
    result = train(load_spec(write_spec(tmp_path, spec)), TrainOptions(out_dir=tmp_path / "run", quiet=True),
                   say=lambda _: None)
    events = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    alphas = [e["alphas"] for e in events if e["event"] == "train"][-1]
    assert all(0.05 < a < 0.95 for a in alphas[0]), alphas
    hybrid = last_valid_loss(result.run_dir)
    alone = {m: last_valid_loss(result.run_dir / "baselines" / m) for m in ("a", "b")}
    assert hybrid <= min(alone.values()), (hybrid, alone)

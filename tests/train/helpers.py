"""Tiny training specs for the training tests (from scratch, short sequences, few steps)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from hybridc.spec import load_spec
from hybridc.train.run import TrainOptions, train
from tests.specs import write_spec

COMPONENTS = textwrap.dedent("""\
    hybridc: 1
    name: tiny
    components:
      attn:
        init: {family: gpt-neox, hidden_size: 16, layers: 2, heads: 2, vocab_size: 32, max_length: 32}
        blocks: split(2)
      ssm:
        init: {family: mamba, hidden_size: 24, layers: 2, vocab_size: 32}
        blocks: split(2)
    """)

DATA = "recall(vocab=16, length=16, examples=256)"


def spec_text(stages: str, mixture: str = "search", train_extra: str = "", hybrid_extra: str = "") -> str:
    return (COMPONENTS + f"hybrid:\n  mixture: {mixture}\n{hybrid_extra}"
            + "train:\n  seed: 3\n  checkpoint_every: 0\n" + train_extra + "  stages:\n"
            + textwrap.indent(textwrap.dedent(stages), "    "))


def run(tmp_path: Path, text: str, name: str = "run", **options):
    path = write_spec(tmp_path, text, f"{name}.yaml")
    rs = load_spec(path)
    messages: list[str] = []
    result = train(rs, TrainOptions(out_dir=tmp_path / name, quiet=True, **options), say=messages.append)
    return result, messages

"""Spec texts and files for tests: small valid specs to start from and to mutate."""

from __future__ import annotations

import textwrap
from pathlib import Path

# A valid from-scratch spec (no files needed): two components, two blocks.
SMALL = textwrap.dedent("""\
    hybridc: 1
    name: small
    components:
      attn:
        init: {family: gpt-neox, hidden_size: 32, layers: 4, heads: 4, vocab_size: 64, max_length: 64}
        blocks: split(2)
      ssm:
        init: {family: mamba, hidden_size: 24, layers: 3, vocab_size: 64}
        blocks: 0..1, 1..3
    hybrid:
      projector: {attn: linear, ssm: mlp}
      mixture: fixed([[0.5, 0.5], [0.25, 0.75]])
    train:
      stages:
        - {name: align, data: "recall(vocab=16, length=16)", steps: 5}
    """)


def write_spec(directory: Path, text: str, name: str = "spec.yaml") -> Path:
    path = Path(directory) / name
    path.write_text(text, encoding="utf-8")
    return path

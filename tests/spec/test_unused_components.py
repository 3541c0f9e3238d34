"""A component with fixed weight 0 in every block never runs, so its input-length limit does not apply
(`hybridc program` gives such weights to components that cannot take the data); with baselines, which
train each component alone, it does."""

from __future__ import annotations

import pytest

from hybridc.errors import SpecError
from hybridc.spec.frontend import parse_string, resolve

SPEC = """\
hybridc: 1
name: unused
components:
  gpt:
    init: {{family: gpt2, hidden_size: 32, layers: 2, heads: 4, vocab_size: 64, max_length: 32}}
    blocks: split(2)
  ssm:
    init: {{family: mamba, hidden_size: 32, layers: 2, vocab_size: 64}}
    blocks: split(2)
hybrid:
  mixture: fixed({alphas})
train:
  baselines: {baselines}
  stages:
    - {{name: finetune, data: "recall(vocab=16, length=64)", steps: 5}}
"""


def check(alphas: str, baselines: bool = False):
    return resolve(parse_string(SPEC.format(alphas=alphas, baselines=str(baselines).lower()), file="s.yaml"))


def test_weight_0_in_every_block_lifts_the_length_limit() -> None:
    assert check("[[0, 1], [0, 1]]").alphas == ((0.0, 1.0), (0.0, 1.0))


@pytest.mark.parametrize("alphas, baselines", [("[[0, 1], [0.1, 0.9]]", False), ("[[0, 1], [0, 1]]", True)])
def test_a_component_that_runs_keeps_its_limit(alphas: str, baselines: bool) -> None:
    with pytest.raises(SpecError, match=r"longer than 'gpt' allows \(32\)"):
        check(alphas, baselines)

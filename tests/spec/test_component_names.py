"""Component names that PyTorch modules use themselves are refused at validate, with a located error
(a component named 'eval' used to pass validate and fail deep in `compile` with a KeyError)."""

from __future__ import annotations

import re

import pytest
import torch.nn as nn

from hybridc.errors import SpecError
from hybridc.spec.canonical import MODULE_ATTRIBUTES
from hybridc.spec.frontend import parse_string

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def test_the_list_holds_every_public_attribute_of_a_module_dict() -> None:
    import transformers.modeling_utils  # noqa: F401  (adds nn.Module.smart_apply)

    public = {n for n in dir(nn.ModuleDict()) if NAME.fullmatch(n) and not n.startswith("_")}
    assert public <= MODULE_ATTRIBUTES, sorted(public - MODULE_ATTRIBUTES)


SPEC = """\
hybridc: 1
name: names
components:
  {name}:
    init: {{family: gpt2, hidden_size: 32, layers: 2, heads: 4, vocab_size: 64}}
  ssm:
    init: {{family: mamba, hidden_size: 32, layers: 2, vocab_size: 64}}
train:
  stages:
    - {{name: align, data: "recall(vocab=16, length=16)", steps: 5}}
"""


@pytest.mark.parametrize("name", ["eval", "train", "forward", "to", "keys", "_modules", "__init__"])
def test_a_name_torch_uses_is_a_located_error(name: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_string(SPEC.format(name=name), file="s.yaml")
    (d,) = err.value.diagnostics
    assert (d.location.line, d.location.col) == (4, 3) and "cannot name a component" in d.message, d.render()


@pytest.mark.parametrize("name", ["evaluator", "trainer", "attn_eval", "x"])
def test_other_names_are_fine(name: str) -> None:
    parse_string(SPEC.format(name=name), file="s.yaml")


def test_a_refused_name_compiles_once_renamed(tmp_path) -> None:
    from hybridc.models.hybrid import lower
    from hybridc.spec.frontend import resolve

    model = lower(resolve(parse_string(SPEC.format(name="eval_model"), file="s.yaml", base_dir=tmp_path)))
    assert any(".eval_model." in key for key in model.state_dict())

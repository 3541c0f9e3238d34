"""The Python API, and `from: hf:<id>` going through huggingface_hub + from_pretrained (offline cache)."""

from __future__ import annotations

import textwrap

import torch

import hybridc
from hybridc.components.pretrained import load_pretrained
from hybridc.components.registry import get_family
from tests.hub import put_in_hub
from tests.specs import SMALL, write_spec


def test_api_mirrors_the_cli(tmp_path):
    path = write_spec(tmp_path, SMALL)
    rs = hybridc.load_spec(path)
    compiled = hybridc.compile(path)
    assert compiled.spec == rs.spec
    assert compiled.graph.total_params == sum(p.numel() for p in compiled.model.parameters())
    assert [s.name for s in compiled.plan.stages] == ["align"]
    assert compiled.model is compiled.model  # built once
    written = compiled.write(tmp_path / "out")
    assert sorted(p.name for p in written) == ["graph.dot", "plan.json", "spec.lock.yaml"]


def test_hub_component_loads_through_from_pretrained(tmp_path, tiny_pretrained):
    directory = tiny_pretrained("gpt-neox")
    commit = put_in_hub("tiny-org/tiny-neox", {p.name: p for p in directory.iterdir()})
    text = textwrap.dedent("""\
        hybridc: 1
        name: from-hub
        components:
          neox:
            from: hf:tiny-org/tiny-neox@main
            blocks: split(2)
          ssm:
            init: {family: mamba, hidden_size: 16, layers: 2, vocab_size: 96}
            blocks: split(2)
        hybrid:
          embeddings: neox
          head: neox
          mixture: fixed([[1, 0], [1, 0]])
        """)
    compiled = hybridc.compile(write_spec(tmp_path, text))
    rc = compiled.resolved.component("neox")
    assert rc.location == "tiny-org/tiny-neox" and rc.revision == "main" and rc.commit == commit
    assert "commit: " + commit in compiled.lock_yaml()
    own = load_pretrained(get_family("gpt-neox"), directory).eval()
    ids = torch.randint(0, 96, (1, 9))
    with torch.no_grad():
        assert (compiled.model.eval()(ids).logits - own(ids).logits).abs().max().item() <= 1e-5

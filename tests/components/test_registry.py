"""The family registry: built-ins by name, plugins through the ``hybridc.families`` entry points."""

from __future__ import annotations

import importlib.metadata
import textwrap

import pytest
import torch

import hybridc
from hybridc.components import registry
from hybridc.components.families.gpt_neox import GPTNeoX
from hybridc.components.family import family_defaults
from tests.specs import write_spec


class ToyNeoX(GPTNeoX):
    """A plugin family: GPT-NeoX under another name, as a third-party package would declare it."""

    name = "toy-neox"
    model_types = ("toy_neox",)

    def defaults(self):
        return family_defaults()["gpt-neox"]


class _EntryPoint:
    name = "toy-neox"

    def load(self):
        return ToyNeoX


@pytest.fixture
def plugin(monkeypatch):
    registry.families.cache_clear()
    registry.builtin_families.cache_clear()
    # (the registry reads the installed entry points when it looks past the built-ins: importlib.metadata's)
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda group: [_EntryPoint()] if group == registry.ENTRY_POINT_GROUP else [])
    yield
    registry.families.cache_clear()


def test_builtins():
    assert set(registry.families()) >= {"gpt-neo", "gpt2", "gpt-neox", "llama", "mamba", "mamba2"}
    assert registry.family_for_model_type("gpt_neox").name == "gpt-neox"
    assert registry.get_family("nope") is None


def test_plugin_family_is_found_and_compiles(plugin, tmp_path):
    assert registry.get_family("toy-neox").name == "toy-neox"
    assert registry.family_for_model_type("toy_neox").name == "toy-neox"
    spec = textwrap.dedent("""\
        hybridc: 1
        name: plugin
        components:
          toy:
            init: {family: toy-neox, hidden_size: 16, layers: 2, heads: 2, vocab_size: 32, max_length: 32}
        """)
    compiled = hybridc.compile(write_spec(tmp_path, spec))
    assert compiled.resolved.component("toy").family == "toy-neox"
    logits = compiled.model(torch.randint(0, 32, (1, 5))).logits
    assert logits.shape == (1, 5, 32)

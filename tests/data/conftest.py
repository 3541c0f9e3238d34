"""Fixtures of the data tests: no network at all, a helper to build data, a tiny word-level tokenizer."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hybridc.data import DataBundle, Tokenizer, build_data
from hybridc.errors import Location
from hybridc.spec.model import DataSource, Task

LOC = Location("spec.yaml", 7, 13)
WORDS = ("[PAD]", "[UNK]", "[EOS]", "the", "cat", "sat", "on", "a", "mat", "dog", "ran", "far", "away", "good", "bad")


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open an internet connection fails the test loudly."""

    def refuse(self: socket.socket, address: Any, *args: Any) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise AssertionError(f"a data test tried to reach the network: {address!r}")
        return real_connect(self, address, *args)

    real_connect = socket.socket.connect
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: (_ for _ in ()).throw(
        AssertionError(f"a data test tried to resolve a host name: {a[:2]!r}")))


def source(name: str, **args: Any) -> DataSource:
    return DataSource(name, tuple(args.items()))


def make(name: str, *, task: Task = Task("causal-lm"), tokenizer: Tokenizer | None = None, seed: int = 0,
         base_dir: Path = Path("."), **args: Any) -> DataBundle:
    """``build_data`` of ``name(**args)`` located at LOC."""
    return build_data(source(name, **args), task=task, tokenizer=tokenizer, seed=seed, base_dir=base_dir,
                      location=LOC)


@pytest.fixture
def build() -> Callable[..., DataBundle]:
    """``build(name, task=, tokenizer=, seed=, base_dir=, **args)``: build_data located at ``LOC``."""
    return make


@pytest.fixture
def loc() -> Location:
    return LOC


@pytest.fixture
def jsonl() -> Callable[[Path, list[dict[str, Any]]], Path]:
    """``jsonl(path, records)`` writes one JSON object per line and returns the path."""
    return write_jsonl


@pytest.fixture(scope="session")
def word_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny word-level ``PreTrainedTokenizerFast`` (15 words, pad 0, unk 1, eos 2) saved to a directory."""
    from tokenizers import Tokenizer as RawTokenizer
    from tokenizers import models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    raw = RawTokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="[UNK]", pad_token="[PAD]", eos_token="[EOS]")
    path = tmp_path_factory.mktemp("word-tokenizer")
    fast.save_pretrained(path)
    return path


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    import json

    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path

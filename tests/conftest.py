"""Shared fixtures: tiny randomly initialised checkpoints that stand in for Hub models."""

from __future__ import annotations

# Importing tests.hub first points huggingface_hub at an offline stand-in for the Hub.
from tests.hub import HUB_CACHE, put_in_hub  # noqa: F401  (isort: skip)

import os  # noqa: E402

# Training in tests runs on a fixed thread count, not one chosen from the machine's load (runs that are
# compared bit for bit must not differ in their threads); tests/train/test_threads.py checks the choice.
os.environ.setdefault("HYBRIDC_THREADS", str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                             else os.cpu_count() or 1))

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.tiny_models import tiny_config

TINY_SEED = 1234
SAMPLE_TEXT = "the cat sat on the mat; a dog ran"


@pytest.fixture(scope="session")
def tiny_pretrained(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``(family_name) -> Path`` of a tiny model of that family saved with ``save_pretrained``
    (safetensors), built once per session with a fixed seed from ``tests.tiny_models.tiny_config``."""
    from hybridc.components.adapters import build_model
    from hybridc.components.registry import get_family

    built: dict[str, Path] = {}

    def get(family_name: str) -> Path:
        if family_name not in built:
            family = get_family(family_name)
            model = build_model(family, tiny_config(family_name), seed=TINY_SEED)
            path = tmp_path_factory.mktemp(f"tiny-{family_name}")
            model.save_pretrained(path)  # safetensors (the only format in transformers 5)
            built[family_name] = path
        return built[family_name]

    return get


@pytest.fixture(scope="session")
def bpe_tokenizer_files(tmp_path_factory) -> dict[str, Path]:
    """Files of a small BPE tokenizer (under 96 tokens) trained here with the tokenizers library."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    rust = Tokenizer(models.BPE(unk_token="<unk>"))
    rust.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(vocab_size=80, special_tokens=["<unk>", "<eos>"])
    rust.train_from_iterator([SAMPLE_TEXT, "the quick brown fox jumps over the lazy dog"] * 20, trainer)
    hf = PreTrainedTokenizerFast(tokenizer_object=rust, unk_token="<unk>", eos_token="<eos>")
    directory = tmp_path_factory.mktemp("bpe")
    hf.save_pretrained(directory)
    assert len(hf) <= 96
    return {p.name: p for p in directory.iterdir()}

"""Shared fixtures: tiny randomly initialised checkpoints that stand in for Hub models."""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

# An offline stand-in for the Hugging Face Hub, set before anything imports huggingface_hub: specs with
# `from: hf:<id>` resolve through the real huggingface_hub/transformers code paths, from this cache.
HUB_CACHE = Path(tempfile.mkdtemp(prefix="hybridc-test-hub-"))
atexit.register(shutil.rmtree, HUB_CACHE, True)
os.environ["HF_HUB_CACHE"] = str(HUB_CACHE)
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import pytest  # noqa: E402

from tests.tiny_models import tiny_config  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"


def put_in_hub(repo_id: str, files: dict[str, Path]) -> str:
    """Place files in the offline cache as snapshot ``main`` of ``repo_id``; returns the fake commit."""
    digest = hashlib.sha1()
    for name, path in sorted(files.items()):
        digest.update(name.encode() + Path(path).read_bytes())
    commit = digest.hexdigest()
    repo = HUB_CACHE / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    for name, path in files.items():
        shutil.copyfile(path, snapshot / name)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return commit


# The configs (no weights) of the public checkpoints the example specs name.
put_in_hub("EleutherAI/gpt-neo-125m", {"config.json": FIXTURES / "hub" / "gpt-neo-125m.config.json"})
put_in_hub("state-spaces/mamba-130m-hf", {"config.json": FIXTURES / "hub" / "mamba-130m-hf.config.json"})

TINY_SEED = 1234


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

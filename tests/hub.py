"""An offline stand-in for the Hugging Face Hub, set up when this module is first imported.

``tests/conftest.py`` imports it before anything imports huggingface_hub (which reads these variables
once): specs with ``from: hf:<id>`` then resolve through the real huggingface_hub and transformers code
paths, from a cache the tests fill with ``put_in_hub``.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

HUB_CACHE = Path(tempfile.mkdtemp(prefix="hybridc-test-hub-"))
atexit.register(shutil.rmtree, HUB_CACHE, True)
os.environ["HF_HUB_CACHE"] = str(HUB_CACHE)
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

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


# The configs (no weights) of the public checkpoints the example specs name, with small stand-in
# tokenizers (byte-level BPEs trained on different text, as the real GPT-2 and GPT-NeoX BPEs differ).
for _repo, _name in (("EleutherAI/gpt-neo-125m", "gpt-neo-125m"), ("state-spaces/mamba-130m-hf", "mamba-130m-hf")):
    put_in_hub(_repo, {"config.json": FIXTURES / "hub" / f"{_name}.config.json",
                       "tokenizer.json": FIXTURES / "hub" / f"{_name}.tokenizer.json"})

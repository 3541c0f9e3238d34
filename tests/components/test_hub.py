"""An unreachable Hub without HF_HUB_OFFLINE fails at once, saying so, instead of after retries.

No network is needed: HF_ENDPOINT points at a closed local port (refused at once), in a fresh process
(huggingface_hub reads its environment once, when imported)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tests.hub import HUB_CACHE

ROOT = Path(__file__).resolve().parents[2]
CLOSED = "http://127.0.0.1:9"  # the discard port: nothing listens there


def unreachable_env(tmp_path: Path, cache: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE",
                                                            "HF_DATASETS_OFFLINE")}
    env.update(HF_ENDPOINT=CLOSED, HF_HOME=str(tmp_path / "hf"), HF_HUB_CACHE=str(cache or tmp_path / "hub"),
               HF_DATASETS_CACHE=str(tmp_path / "datasets"))
    return env


def run(args: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    return done, time.monotonic() - start


def test_validate_says_at_once_that_the_hub_is_unreachable(tmp_path):
    done, seconds = run([sys.executable, "-m", "hybridc", "validate", "specs/neo-mamba.yaml"], unreachable_env(tmp_path))
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "Retrying" not in output and "Traceback" not in output
    lines = (ROOT / "specs" / "neo-mamba.yaml").read_text().splitlines()
    for name, repo in (("neo", "EleutherAI/gpt-neo-125m"), ("mamba", "state-spaces/mamba-130m-hf")):
        line = lines.index(f"    from: hf:{repo}") + 1
        assert (f"specs/neo-mamba.yaml:{line}:11: error: component '{name}': cannot fetch config.json of hf:{repo}: "
                f"the Hub ({CLOSED}) is unreachable (ConnectError: ") in output, output
    assert "(hint: set HF_HUB_OFFLINE=1 to use only the cache (no network tries); download the model once" in output
    assert seconds < 20, seconds  # huggingface_hub's retries alone took 23 s a file


def test_an_unreachable_hub_still_serves_the_cache(tmp_path):
    done, _ = run([sys.executable, "-m", "hybridc", "validate", "specs/neo-mamba.yaml"],
                  unreachable_env(tmp_path, cache=HUB_CACHE))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "specs/neo-mamba.yaml: ok" in done.stdout and "Retrying" not in done.stderr


def test_tokenizers_weights_and_datasets_say_so_too(tmp_path):
    code = textwrap.dedent("""
        from hybridc.components.pretrained import load_pretrained
        from hybridc.components.registry import get_family
        from hybridc.data.records import read_hub
        from hybridc.data.tokenizer import load_hf_tokenizer
        from hybridc.errors import RunError

        for call in (lambda: load_hf_tokenizer("EleutherAI/gpt-neo-125m", None, name="neo"),
                     lambda: read_hub("someone/some-data")):
            try:
                call()
            except RunError as err:
                print(err.render())
        try:
            load_pretrained(get_family("gpt-neo"), "EleutherAI/gpt-neo-125m")
        except ValueError as err:
            print(f"weights: {err}")
    """)
    done, seconds = run([sys.executable, "-c", code], unreachable_env(tmp_path))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 3, done.stdout
    unreachable = f"the Hub ({CLOSED}) is unreachable (ConnectError: "
    assert lines[0].startswith(f"error: cannot load EleutherAI/gpt-neo-125m: {unreachable}")
    assert "(hint: set HF_HUB_OFFLINE=1 to use only the cache (no network tries); download the tokenizer" in lines[0]
    assert lines[1].startswith(f"error: cannot load dataset hf:someone/some-data: {unreachable}")
    assert "download the dataset once while online, or use a local .jsonl (or .txt/.csv) file" in lines[1]
    assert lines[2].startswith(f"weights: {unreachable}") and "HF_HUB_OFFLINE=1" in lines[2]
    assert "Retrying" not in done.stderr
    assert seconds < 60, seconds  # three Hub files, each retried for 23 s, took more than a minute

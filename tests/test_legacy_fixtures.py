"""Model directories and a checkpoint written by an earlier release (``tests/fixtures/legacy``, made by
``scripts/make_legacy_fixtures.py`` before the package was reorganised into rooms) load, from a moved copy, to
the model they were: the same logits as recorded when they were written. A saved hybrid's
``modeling_hybridc.py``/``configuration_hybridc.py`` import that release's module paths
(``hybridc.models.hybrid``, ``hybridc.models.config``), so these tests also hold the old dotted names to their promise,
in a process that never imports hybridc itself (transformers' remote-code path)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

FIXTURES = Path(__file__).parent / "fixtures" / "legacy"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())
IDS = torch.tensor(EXPECTED["ids"])  # (B, T)
HYBRIDS = ("continuous", "run-final", "discretized")
MODELS = (*HYBRIDS, "plain")
ATOL = 1e-4  # the recorded logits are rounded to 6 decimals


@pytest.fixture(scope="module")
def moved(tmp_path_factory) -> Path:
    """A copy of the fixtures elsewhere (nothing is written into the repository)."""
    where = tmp_path_factory.mktemp("legacy") / "moved"
    shutil.copytree(FIXTURES, where)
    return where


def assert_logits(logits: torch.Tensor, name: str) -> None:
    expected = torch.tensor(EXPECTED["logits"][name])
    assert logits.shape == expected.shape, name
    assert torch.allclose(logits, expected, atol=ATOL), f"{name}: {(logits - expected).abs().max():.2e}"


@pytest.mark.parametrize("name", MODELS)
def test_a_directory_of_the_earlier_release_loads_to_the_same_model(moved, name):
    from hybridc.models.load import load_saved

    saved = load_saved(moved / name)
    assert saved.tokenizer is not None
    with torch.no_grad():
        assert_logits(saved.model(IDS).logits, name)


@pytest.mark.parametrize("name", HYBRIDS)
def test_the_documented_entry_points_load_an_earlier_hybrid(moved, name):
    import transformers

    import hybridc  # noqa: F401  (registers the Auto classes)
    from hybridc.models.hybrid import HybridModel

    for load in (HybridModel.from_pretrained, transformers.AutoModelForCausalLM.from_pretrained):
        model = load(moved / name).eval()
        with torch.no_grad():
            assert_logits(model(IDS).logits, name)


def test_a_stopped_runs_checkpoint_of_the_earlier_release_loads(moved):
    import yaml

    from hybridc.models.hybrid import lower
    from hybridc.spec.frontend import resolve_from_lock
    from hybridc.train.checkpoint import load_checkpoint

    run = moved / "stopped-run"
    model = lower(resolve_from_lock(yaml.safe_load((run / "spec.lock.yaml").read_text())), pretrained=False)
    optimizer = load_checkpoint(run / "checkpoints" / "step-2", model)
    assert optimizer  # the optimizer state a resume continues from
    with torch.no_grad():
        assert_logits(model.eval()(IDS).logits, "stopped-run")


def test_earlier_hybrids_load_through_their_remote_code_without_importing_hybridc(moved):
    """transformers imports the hybrid's modeling_hybridc.py, which imports the earlier module paths (the
    same two files in every hybrid directory: one is loaded here); the plain export needs no hybridc."""
    code = textwrap.dedent(f"""\
        import json, sys, torch
        from transformers import AutoModelForCausalLM
        assert "hybridc" not in sys.modules
        out = {{}}
        for name in ("run-final", "plain"):
            model = AutoModelForCausalLM.from_pretrained({str(moved)!r} + "/" + name, trust_remote_code=True).eval()
            with torch.no_grad():
                out[name] = [type(model).__module__, model(torch.tensor({EXPECTED["ids"]!r})).logits.tolist()]
        print(json.dumps(out))
        """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["run-final"][0].startswith("transformers_modules."), out["run-final"][0]  # the directory's class
    assert out["plain"][0].startswith("transformers.models.gpt_neo"), out["plain"][0]
    for name, (_, logits) in out.items():
        assert_logits(torch.tensor(logits), name)


def test_every_module_path_of_the_earlier_release_is_its_module_now():
    """Each earlier dotted name (``hybridc/__init__.py``'s table) imports the module that lives in its room now:
    the same object, so a class imported under either name is one class."""
    import importlib

    import hybridc

    assert "hybridc.nn.hybrid" in hybridc._EARLIER and "hybridc.hf_config" in hybridc._EARLIER  # (remote code's)
    for earlier, now in hybridc._EARLIER.items():
        assert importlib.import_module(earlier) is importlib.import_module(now), earlier
    from hybridc.hf_config import HybridConfig
    from hybridc.models.config import HybridConfig as Now

    assert HybridConfig is Now

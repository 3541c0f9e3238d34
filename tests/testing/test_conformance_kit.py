"""The conformance kit (``hybridc.testing.conformance``) on plugin families installed as users install them.

The sample family (``tests/plugins/sample_family``, its own transformers model and adapter) passes every check,
through the pytest class a plugin author subclasses; its deliberately broken copy (a segment that skips its last
layer) fails, and the kit names the invariant and shrinks the case to the smallest config that shows it.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from hybridc.components.registry import get_family
from hybridc.testing.conformance import CHECKS, FamilyConformance, FamilyNonconformance, check_family


@pytest.fixture(autouse=True)
def _plugins(plugin_site):
    yield


def test_the_plugins_are_found_through_their_entry_points() -> None:
    assert type(get_family("sample-shift")).__module__ == "hybridc_sample_family"
    assert get_family("broken-shift").name == "broken-shift"


class TestTheSamplePluginConforms(FamilyConformance):
    family = "sample-shift"
    examples = 2
    fresh_process = False  # (loaded in another process by the pytest plugin's run, CI's long part)


def test_a_segment_that_skips_its_last_layer_fails_with_the_smallest_case() -> None:
    with pytest.raises(FamilyNonconformance) as caught:
        check_family("broken-shift", examples=4, seed=1)
    failure = caught.value
    # the counts and the graph are right (the layer is there, it just never runs): one-hot is what breaks
    assert failure.check == "one-hot"
    assert failure.invariant == "one-hot equals the component's own logits"
    case = failure.case
    assert case.sizes["layers"] == 1 and case.blocks == 1 and case.sizes["hidden_size"] == 16, case.describe()
    message = str(failure)
    assert "one-hot equals the component's own logits" in message and "layers: 1" in message


def test_the_checks_are_in_the_order_they_run() -> None:
    assert CHECKS[:2] == ("counts", "parameters")  # the cheap ones first
    with pytest.raises(ValueError, match="unknown checks"):
        check_family("sample-shift", checks=["one-hot", "nope"])


@pytest.mark.slow
@pytest.mark.parametrize("family", ["falcon-h1", "rwkv"])  # llama: the README's test file
def test_built_in_families_pass_the_kit(family: str) -> None:
    check_family(family, examples=3)


@pytest.mark.slow
def test_the_pytest_plugin_runs_the_checks_without_a_test_file(plugin_site, tmp_path) -> None:
    """``pytest -p hybridc.testing.conformance --hybridc-family NAME`` in a directory with no tests: one test per
    check; the broken family's failures name the invariant and the smallest case (the sample family's passes are
    the class above)."""
    (tmp_path / "conftest.py").write_text("")
    env = {"PYTHONPATH": str(plugin_site)}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "hybridc.testing.conformance",
                           "--hybridc-family", "broken-shift", "--hybridc-examples", "2", "-p", "no:cacheprovider",
                           str(tmp_path)],
                          capture_output=True, text=True, cwd=tmp_path, env={**_env(), **env}, timeout=900)
    out = done.stdout + done.stderr
    assert done.returncode == 1, out[-3000:]
    # the broken family fails what runs its own segments alone: one-hot, and greedy generation on it; a branch of
    # it at weight 0, and the mixed or pruned hybrids compared with themselves, cannot tell
    assert f"2 failed, {len(CHECKS) - 2} passed" in out, out[-3000:]
    assert "conformance[broken-shift-one-hot] - " in out and "conformance[broken-shift-generate] - " in out
    assert "one-hot equals the component's own logits" in out and "smallest failing case" in out


def _env() -> dict:
    import os

    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


@pytest.mark.slow
def test_shrinking_finds_the_smallest_case_a_bug_needs(monkeypatch) -> None:
    """A bug the smallest case does not show (a segment that does not start at layer 0 skips its last layer:
    only a component cut into two blocks or more shows it): the kit searches, then shrinks to two layers in two
    blocks at the narrowest width."""
    from hybridc_sample_family.adapter import ShiftSegment

    original = ShiftSegment.forward

    def later_segments_skip_a_layer(self, h, attention_mask=None, position_ids=None, context=None):
        if self.start == 0:
            return original(self, h, attention_mask, position_ids, context)
        mask, cache = (context.mask, context.cache) if context is not None else (attention_mask, None)
        for layer in list(self.layers)[:-1]:
            h = layer(h, mask, cache)
        return self.norm(h) if self.norm is not None else h

    monkeypatch.setattr(ShiftSegment, "forward", later_segments_skip_a_layer)
    with pytest.raises(FamilyNonconformance) as caught:
        check_family("sample-shift", checks=["one-hot"], examples=20, seed=0)
    case = caught.value.case
    assert (case.sizes["layers"], case.blocks, case.sizes["hidden_size"]) == (2, 2, 16), case.describe()

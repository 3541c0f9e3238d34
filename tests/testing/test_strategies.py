"""The public strategies (``hybridc.testing.strategies``): what they draw is what they say, every kind of
variation and mistake is reachable, and importing hybridc needs no hypothesis."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hybridc.errors import SpecError
from hybridc.testing import invariants as inv
from hybridc.testing.specs import canonical_data, resolve, rows_of
from hybridc.testing.strategies import MISTAKES, VARIATIONS, bad_specs, specs, variations
from hybridc.testing.tiny import tiny_checkpoint
from tests.specs import SMALL

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "specs" / "quickstart.yaml"
SETTINGS = dict(deadline=None, database=None, suppress_health_check=list(HealthCheck))
# SMALL (fixed alphas, one stage) and a searched one with discretize and retrain stages
SEARCHED = SMALL.replace("fixed([[0.5, 0.5], [0.25, 0.75]])", "search").replace(
    '- {name: align, data: "recall(vocab=16, length=16)", steps: 5}',
    '- {name: search, data: "recall(vocab=16, length=16)", steps: 5}\n    - {name: discretize}\n'
    '    - {name: retrain, steps: 3}')


@pytest.fixture(scope="module")
def directories(tmp_path_factory):
    base = tmp_path_factory.mktemp("models")
    return {"neo": tiny_checkpoint("gpt-neo", base / "neo", layers=2), "rec": tiny_checkpoint("mamba2", base / "rec")}


@settings(max_examples=25, **SETTINGS)
@given(data=st.data())
def test_specs_over_named_families_and_directories_are_valid(directories, data) -> None:
    drawn = data.draw(specs(families=("qwen3", "falcon-h1"), directories=directories, components=(1, 3)))
    rs = resolve(drawn)
    assert 1 <= len(rs.names) <= 3
    for name in rs.names:
        entry = drawn["components"][name]
        if "from" in entry:
            assert name in directories and entry["from"] == str(directories[name])
        else:
            assert entry["init"]["family"] in ("qwen3", "falcon-h1")


@settings(max_examples=25, **SETTINGS)
@given(drawn=specs(mixtures=("one-hot",)))
def test_one_hot_specs_are_the_one_hot_invariant_s_setting(drawn) -> None:
    rs = resolve(drawn)
    rows = rows_of(drawn["hybrid"]["mixture"])
    (chosen,) = {rs.names[row.index(1.0)] for row in rows}
    assert all(sorted(row)[-1] == 1.0 and sum(row) == 1.0 for row in rows)
    assert rs.spec.tokenizer == chosen and {rs.spec.hybrid.embeddings, rs.spec.hybrid.head} <= {"mix", chosen}
    assert rs.spec.task.kind == "causal-lm"


def _variations_by_kind() -> dict[str, list]:
    """For each base (fixed alphas with a stage; searched with discretize and retrain; no stages at all), the
    strategy of each kind of variation that applies to it."""
    out: dict[str, list] = {}
    for base in (SMALL, SEARCHED, SMALL.split("train:")[0]):
        data = canonical_data(base)
        for kind in VARIATIONS:
            try:
                out.setdefault(kind, []).append((data, variations(data, kinds=[kind])))
            except ValueError:  # the kind cannot vary this spec (a searched spec has no alpha rows)
                pass
    return out


@settings(max_examples=3, **SETTINGS)
@given(data=st.data())
def test_every_kind_of_variation_is_drawn_valid_and_named_by_diff(data) -> None:
    by_kind = _BY_KIND or _BY_KIND.update(_variations_by_kind()) or _BY_KIND
    assert set(by_kind) == set(VARIATIONS)  # each kind varies one of the bases at least
    for kind, options in by_kind.items():
        base, strategy = data.draw(st.sampled_from(options), label=kind)
        variation = data.draw(strategy)
        resolve(variation.spec)
        inv.variation_shows_in_diff(base, variation)


_BY_KIND: dict[str, list] = {}


@settings(max_examples=4, **SETTINGS)
@given(data=st.data())
def test_every_kind_of_mistake_gives_its_located_error(data) -> None:
    """Each kind of mistake made in SMALL (which every kind applies to) is refused on its line."""
    for kind in MISTAKES:
        bad = data.draw(bad_specs(SMALL, kinds=[kind]), label=kind)
        inv.error_is_located(bad)


@settings(max_examples=15, **SETTINGS)
@given(bad=bad_specs(QUICKSTART))
def test_mistakes_in_a_user_s_spec_are_located(bad) -> None:
    inv.error_is_located(bad, QUICKSTART.parent)


def test_variations_of_an_invalid_spec_are_refused() -> None:
    with pytest.raises(SpecError):
        variations(SMALL.replace("heads: 4", "heads: 3"))
    with pytest.raises(ValueError, match="unknown variation kinds"):
        variations(SMALL, kinds=["colour"])


def test_importing_hybridc_needs_no_hypothesis_and_the_front_end_no_torch() -> None:
    """In a process where hypothesis cannot be imported: hybridc, its front end and ``hybridc.testing``'s torch-free
    parts import (without torch), and the strategies say what to install."""
    script = (
        "import sys\n"
        "sys.modules['hypothesis'] = None\n"
        "import hybridc, hybridc.testing, hybridc.testing.specs, hybridc.testing.tiny\n"
        "from hybridc.testing.specs import resolve\n"
        "resolve(open(sys.argv[1]).read())\n"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'torch imported'\n"
        "try:\n"
        "    import hybridc.testing.strategies\n"
        "except ImportError as err:\n"
        "    print(err)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(QUICKSTART)], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "needs hypothesis: pip install 'hybridc[testing]'" in done.stdout

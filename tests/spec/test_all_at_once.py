"""Every problem of a spec in one run: schema, expression and semantic checks all report, and a problem
never brings errors that only follow from it.

The property test draws a set of independent mistakes (each on its own line, each one error when alone)
and applies them to one valid spec: ``validate`` must report exactly one error per mistake, each at its line.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridc.errors import SpecError
from hybridc.spec.frontend import load_spec

DATA = Path(__file__).resolve().parents[2] / "specs" / "data" / "corpus.txt"

BASE = """\
hybridc: 1
name: many
tokenizer: bytes
components:
  attn:
    init: {family: gpt2, hidden_size: 64, layers: 4, heads: 4}
    blocks: split(2)
  ssm:
    init: {family: mamba, hidden_size: 64, layers: 4}
    blocks: 0..2, 2..4
hybrid:
  width: 64
  projector: linear
  embeddings: mix
  mixture: search
task: causal-lm
train:
  seed: 0
  stages:
    - {name: align, data: "text(data/corpus.txt, block=32)", steps: 5, lr: 1e-3}
    - {name: search, search: "darts(lr=0.01)", steps: 5}
    - {name: finetune, data: "text(data/corpus.txt, block=32)", steps: 5}
    - {name: retrain, steps: 5, warmup: 1}
"""

# line -> (the line with one mistake, a fragment of the one error it must give); one of each kind of check
MISTAKES = {
    6: ("    init: {family: gpt2, hidden_size: 64, layers: 4, heads: 3}", "not divisible by its 3 attention heads"),
    10: ("    blocks: 0..2, 2..9", "range 2..9 is outside 'ssm'"),                          # semantic
    12: ("  width: wide", "'hybrid.width' must be"),                                      # schema, a leaf
    13: ("  projector: linar", "'hybrid.projector' must be"),                             # schema, a leaf
    14: ("  embedings: mix", "unknown key 'embedings'"),                                  # schema, unknown key
    16: ("task: causal-llm", "unknown task 'causal-llm'"),                                # expression
    18: ("  seed: zero", "'train.seed' must be an integer"),                             # schema, a leaf
    20: ('    - {name: align, data: "text(data/corpus.txt, block=32)", steps: 5, lr: -1}', "must be > 0"),
    21: ('    - {name: search, search: "darts(lr=0.01", steps: 5}', "invalid search algorithm"),
    22: ('    - {name: finetune, data: "text(data/missing.txt, block=32)", steps: 5}', "no such data file"),
    23: ("    - {name: retrian, steps: 5, warmup: 1}", "stage 'retrian' has no kind"),     # a stage that fails
}


def write(tmp: Path, text: str) -> Path:
    (tmp / "data").mkdir(exist_ok=True)
    if not (tmp / "data" / "corpus.txt").exists():
        shutil.copy(DATA, tmp / "data" / "corpus.txt")
    path = tmp / "spec.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def with_mistakes(lines: set[int]) -> str:
    out = BASE.splitlines()
    for line in lines:
        out[line - 1] = MISTAKES[line][0]
    return "\n".join(out) + "\n"


def problems(path: Path) -> list[tuple[int, str]]:
    try:
        load_spec(path)
    except SpecError as err:
        return [(d.location.line, d.message) for d in err.diagnostics]
    return []


def test_the_base_spec_is_valid(tmp_path: Path) -> None:
    assert problems(write(tmp_path, BASE)) == []


@pytest.mark.parametrize("line", sorted(MISTAKES))
def test_each_mistake_alone_is_one_error(tmp_path: Path, line: int) -> None:
    got = problems(write(tmp_path, with_mistakes({line})))
    assert len(got) == 1 and got[0][0] == line and MISTAKES[line][1] in got[0][1], got


def test_every_mistake_at_once(tmp_path: Path) -> None:
    """All eleven in one run (schema problems used to stop the expression checks, and those the semantic ones)."""
    got = problems(write(tmp_path, with_mistakes(set(MISTAKES))))
    assert sorted(line for line, _ in got) == sorted(MISTAKES), got
    for line, message in got:
        assert MISTAKES[line][1] in message, (line, message)


@settings(max_examples=40, deadline=None)
@given(st.sets(st.sampled_from(sorted(MISTAKES)), min_size=1))
def test_any_set_of_mistakes_is_reported_at_once_and_alone(tmp_path_factory, lines: set[int]) -> None:
    path = write(tmp_path_factory.mktemp("spec"), with_mistakes(lines))
    got = problems(path)
    assert sorted(line for line, _ in got) == sorted(lines), got
    for line, message in got:
        assert MISTAKES[line][1] in message, (line, message)


RANGES = """\
hybridc: 1
name: ranges
tokenizer: bytes
components:
  attn:
    init: {family: gpt2, hidden_size: 64, layers: 6, heads: 4}
    blocks: 0..2, 3..5, 5..7
  ssm:
    init: {family: mamba, hidden_size: 64, layers: 6}
    blocks: 0..2, 2..4, 4..
  neo:
    init: {family: gpt-neo, hidden_size: 64, layers: 6, heads: 4}
    blocks: 0..3, 2..4, 4..8
train:
  stages:
    - {name: align, data: "text(data/corpus.txt, block=64)", steps: 5}
"""


def test_a_range_that_does_not_parse_does_not_hide_the_other_components_ranges(tmp_path: Path) -> None:
    got = problems(write(tmp_path, RANGES))
    assert [line for line, _ in got] == [7, 7, 10, 13, 13], got
    assert "invalid blocks" in got[2][1]


def test_a_stage_whose_data_does_not_parse_does_not_leave_the_next_without_data(tmp_path: Path) -> None:
    text = BASE.replace('block=32)", steps: 5, lr: 1e-3', 'block=32", steps: 5')
    got = problems(write(tmp_path, text))
    assert len(got) == 1 and "invalid data source" in got[0][1], got


def test_a_component_that_does_not_parse_stops_only_the_checks_that_need_it(tmp_path: Path) -> None:
    text = BASE.replace("blocks: 0..2, 2..4", "blocks: 0..2, 2..").replace("mixture: search", "mixture: fixed([[0.5, 0.5], [1]])")
    text = text.replace('    - {name: search, search: "darts(lr=0.01)", steps: 5}\n', "")
    got = problems(write(tmp_path, text))
    # the mixture's rows are checked against the blocks, which are unknown: no guess about them
    assert [line for line, _ in got] == [10], got


def test_a_component_without_a_source_does_not_stop_the_checks_of_the_others(tmp_path: Path) -> None:
    text = BASE.replace("    init: {family: mamba, hidden_size: 64, layers: 4}\n", "").replace("heads: 4", "heads: 3")
    got = problems(write(tmp_path, text))
    assert [line for line, _ in got] == [6, 8] and "needs 'from'" in got[1][1], got


def test_a_missing_required_key_stops_the_checks_that_would_need_it(tmp_path: Path) -> None:
    got = problems(write(tmp_path, BASE.replace("name: many\n", "").replace("heads: 4", "heads: 3")))
    assert len(got) == 1 and "missing the required key 'name'" in got[0][1], got


def test_inherited_data_is_checked_once_where_it_is_written(tmp_path: Path) -> None:
    text = BASE.replace('"text(data/corpus.txt, block=32)", steps: 5, lr', '"text(data/gone.txt, block=32)", steps: 5, lr')
    got = problems(write(tmp_path, text))
    assert got == [(20, "no such data file 'data/gone.txt'")], got

"""A training stage's length in epochs instead of steps: accepted, canonical, diffed, located errors."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from hybridc.errors import SpecError
from hybridc.graph.diff import diff_specs
from hybridc.spec.frontend import parse_string
from hybridc.spec.model import Stage
from tests.specs import SMALL

STAGE = '- {name: align, data: "recall(vocab=16, length=16)", steps: 5}'
STAGE_LINE = 15  # the line of STAGE in SMALL


def with_stage(stage: str, *more: str) -> str:
    return SMALL.replace(STAGE, "\n    ".join((stage, *more)))


def fmt(text: str) -> str:
    return parse_string(text).canonical_text()


def errors(text: str) -> list:
    with pytest.raises(SpecError) as info:
        parse_string(text, file="s.yaml")
    return info.value.diagnostics


@pytest.mark.parametrize("written, value, shown", [("2", 2.0, "epochs: 2"), ("2.0", 2.0, "epochs: 2"),
                                                   ("0.5", 0.5, "epochs: 0.5"), ("1e-3", 0.001, "epochs: 0.001")])
def test_epochs_are_accepted_and_canonical(written, value, shown):
    text = with_stage(f'- {{name: align, data: "recall(vocab=16, length=16)", epochs: {written}}}')
    (stage,) = parse_string(text).spec.train.stages
    assert stage.epochs == value and isinstance(stage.epochs, float) and stage.steps is None
    out = fmt(text)
    assert f"      {shown}\n" in out and "steps:" not in out.split("stages:")[1]
    # the stage's length sits where steps would, before batch_size
    assert out.index(shown) < out.index("batch_size:")
    assert fmt(out) == out
    assert parse_string(out).spec == parse_string(text).spec


def test_steps_stay_the_default_length():
    (stage,) = parse_string(with_stage('- {name: align, data: "recall()"}')).spec.train.stages
    assert stage.steps == 100 and stage.epochs is None
    assert "      steps: 100\n" in fmt(with_stage('- {name: align, data: "recall()"}'))


def test_comments_on_epochs_are_kept():
    text = SMALL.replace(STAGE, '- name: align\n      data: "recall()"\n      epochs: 2  # two passes')
    assert "      epochs: 2  # two passes\n" in fmt(text)


@pytest.mark.parametrize("stage, line, col, fragment", [
    ('- {name: align, data: "recall()", steps: 5, epochs: 2}', STAGE_LINE, 49,
     "stage 'align' gives both 'steps' and 'epochs'"),
    ('- {name: align, data: "recall()", epochs: 2, steps: 5}', STAGE_LINE, 50,
     "stage 'align' gives both 'steps' and 'epochs'"),
    ('- {name: align, data: "recall()", epochs: 0}', STAGE_LINE, 47, "'train.stages[0].epochs' must be > 0, not 0"),
    ('- {name: align, data: "recall()", epochs: -1.5}', STAGE_LINE, 47, "must be > 0, not -1.5"),
    ('- {name: align, data: "recall()", epochs: .nan}', STAGE_LINE, 47, ".nan is not a finite number"),
    ('- {name: align, data: "recall()", epochs: .inf}', STAGE_LINE, 47, ".inf is not a finite number"),
    ('- {name: align, data: "recall()", epochs: 1e999}', STAGE_LINE, 47, "is too large"),
    ('- {name: align, data: "recall()", epochs: ' + "9" * 400 + "}", STAGE_LINE, 47, "is too large"),
    ('- {name: align, data: "recall()", epochs: two}', STAGE_LINE, 47, "'train.stages[0].epochs' must be a number"),
    ('- {name: align, data: "recall()", epochs: true}', STAGE_LINE, 47, "must be a number, not a boolean"),
    ('- {name: align, data: "recall()", epoch: 2}', STAGE_LINE, 39, "unknown key 'epoch'"),
])
def test_bad_epochs_are_located(stage, line, col, fragment):
    found = errors(with_stage(stage))
    assert len(found) == 1, [d.render() for d in found]
    (d,) = found
    assert (d.location.file, d.location.line, d.location.col) == ("s.yaml", line, col), d.render()
    assert fragment in d.message, d.render()


@pytest.mark.parametrize("kind", ["rewind", "discretize"])
def test_epochs_on_a_stage_that_does_not_train(kind):
    text = with_stage(STAGE, f"- {{name: {kind}, epochs: 1}}").replace("fixed([[0.5, 0.5], [0.25, 0.75]])", "search")
    (d,) = errors(text)
    assert (d.location.line, d.location.col) == (STAGE_LINE + 1, 16 + len(kind))  # the key 'epochs'
    assert f"a {kind} stage does not train; 'epochs' has no effect here" in d.message


def test_diff_names_a_change_of_length():
    steps = parse_string(SMALL).spec
    two = parse_string(with_stage('- {name: align, data: "recall(vocab=16, length=16)", epochs: 2}')).spec
    half = parse_string(with_stage('- {name: align, data: "recall(vocab=16, length=16)", epochs: 0.5}')).spec
    assert [c.render() for c in diff_specs(two, half)] == ["train.stages[align].epochs: 2 -> 0.5"]
    assert [c.render() for c in diff_specs(steps, two)] == ["train.stages[align].steps: removed (was 5)",
                                                             "train.stages[align].epochs: added 2"]
    assert diff_specs(two, two) == []


@pytest.mark.parametrize("epochs, sequences, batch, accum, processes, steps", [
    (2, 32, 8, 2, 1, 4),     # 64 sequences in batches of 16
    (2, 32, 8, 1, 2, 4),     # the same global batch from two processes
    (0.5, 16, 6, 1, 1, 2),   # 8 sequences: a batch and a part
    (1, 33, 8, 1, 1, 5),     # a part-batch rounds up
    (0.1, 30, 3, 1, 1, 1),   # 0.1 x 30 is 3 exactly (not the float just above it)
    (0.01, 10, 8, 1, 1, 1),  # at least one step
    (3, 1000, 1, 1, 1, 3000),
])
def test_steps_for_epochs(epochs, sequences, batch, accum, processes, steps):
    stage = Stage("s", "finetune", epochs=float(epochs), steps=None, batch_size=batch, grad_accum=accum)
    assert stage.steps_for(sequences, processes) == steps
    assert Stage("s", "finetune", steps=7).steps_for(sequences, processes) == 7
    assert Stage("s", "rewind").steps_for(sequences, processes) == 0


def test_validate_with_epochs_stays_torch_free(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(with_stage('- {name: align, data: "recall()", epochs: 1.5}'))
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import sys
        from click.testing import CliRunner
        from hybridc.cli import main
        result = CliRunner().invoke(main, ["validate", {str(path)!r}])
        assert result.exit_code == 0, result.output
        assert "torch" not in sys.modules
    """)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr

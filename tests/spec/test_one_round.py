"""Errors in one round: a spec with a structural error (a schema error anywhere, a component or stage that
does not build, block counts that differ), an alpha row that does not sum to 1 and a data ``length=`` longer
than a component allows shows all three in the first ``hybridc validate``, each located, not the alpha and
length errors only once the structural one is fixed.

The specs are the shipped ``specs/fixed-alpha.yaml`` (GPT-2 with 128 positions beside Mamba-2, fixed alphas,
recall data) with the mistakes a new user makes."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from hybridc.cli import main

SHIPPED = Path(__file__).resolve().parents[2] / "specs" / "fixed-alpha.yaml"
ALPHAS = ("mixture: fixed([[0.8, 0.2], [0.3, 0.7]])", "mixture: fixed([[0.9, 0.2], [0.3, 0.7]])")
LENGTH = ("recall(vocab=32, length=32,", "recall(vocab=32, length=512,")

# (the line as shipped, the line with the mistake, a fragment of the error it gives)
STRUCTURAL = {
    "stage kind": ("      kind: align", "      kind: alig", "'train.stages[0].kind' must be one of"),
    "stage name": ("    - name: align", "    - name: 3", "'train.stages[0].name' must be a string"),
    "spec name": ("name: fixed-alpha", "name: 5", "'name' must be a string"),
    "version": ("hybridc: 1", "hybridc: 9", "'hybridc' must be 1"),
    "trust_remote_code": ("    trust_remote_code: false\n  ssm:", "    trust_remote_code: 3\n  ssm:",
                          "'components.gpt.trust_remote_code' must be true or false"),
    "component name": ("  ssm:", "  SSM bad:", "invalid name 'SSM bad'"),
    "blocks expression": ("    blocks: split(2)\n    trust_remote_code: false\n  ssm:",
                          "    blocks: splt(2)\n    trust_remote_code: false\n  ssm:", "invalid blocks 'splt(2)'"),
    "block counts": ("    blocks: split(2)\n    trust_remote_code: false\n  ssm:",
                     "    blocks: split(4)\n    trust_remote_code: false\n  ssm:", "'ssm' has 2 blocks but 'gpt' has 4"),
    "attention heads": ("heads: 4", "heads: 5", "not divisible by its 5 attention heads"),
    "unknown key": ("      grad_clip: 1.0", "      grad_clip: 1.0\n      gradclip: 1.0", "unknown key 'gradclip'"),
    "lr": ("      lr: 0.001", "      lr: fast", "'train.stages[0].lr' must be a number"),
}


def shipped() -> str:
    text = SHIPPED.read_text(encoding="utf-8")
    for old, _ in (ALPHAS, LENGTH):
        assert text.count(old) == 1, old
    for old, _, _ in STRUCTURAL.values():
        assert text.count(old) == 1, old
    return text


def validate(tmp_path: Path, text: str) -> tuple[Path, object]:
    path = tmp_path / "spec.yaml"
    path.write_text(text, encoding="utf-8")
    return path, CliRunner().invoke(main, ["validate", str(path)])


def located(text: str, needle: str) -> tuple[int, int]:
    """(line, column) of ``needle`` in ``text``, 1-based."""
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return number, line.index(needle) + 1
    raise AssertionError(needle)


def errors(result) -> list[str]:
    return [line for line in result.output.splitlines() if ": error: " in line]


def with_mistakes(*mistakes: tuple[str, str]) -> str:
    text = shipped()
    for old, new in mistakes:
        text = text.replace(old, new)
    return text


def test_the_shipped_spec_is_valid(tmp_path: Path) -> None:
    _, result = validate(tmp_path, shipped())
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("mistake", [ALPHAS, LENGTH], ids=["alphas", "length"])
def test_each_of_the_two_alone_is_one_error(tmp_path: Path, mistake) -> None:
    _, result = validate(tmp_path, with_mistakes(mistake))
    assert result.exit_code == 2 and len(errors(result)) == 1, result.output


@pytest.mark.parametrize("kind", sorted(STRUCTURAL))
def test_a_structural_error_shows_the_alpha_and_length_errors_in_the_same_round(tmp_path: Path, kind: str) -> None:
    old, new, fragment = STRUCTURAL[kind]
    text = with_mistakes(ALPHAS, LENGTH, (old, new))
    path, result = validate(tmp_path, text)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "internal error" not in result.output, result.output
    row_line, row_col = located(text, "[0.9, 0.2]")
    data_line, data_col = located(text, "recall(vocab=32, length=512")
    assert f"{path}:{row_line}:{row_col}: error: alpha row 0 sums to 1.1, not 1" in result.output, result.output
    assert (f"{path}:{data_line}:{data_col}: error: sequences of 512 tokens (length=512) are longer than 'gpt' "
            "allows (128) (hint: set length=128 or less in recall(...))") in result.output, result.output
    structural = [line for line in errors(result) if fragment in line]
    assert structural and all(line.startswith(f"{path}:") for line in structural), result.output
    # nothing else: the two checks add no error that follows from the structural one
    others = [line for line in errors(result) if fragment not in line]
    assert len(others) == 2, result.output
    assert result.output.rstrip().endswith(f"{len(errors(result))} errors found")


def test_fixing_the_structural_error_brings_no_new_round(tmp_path: Path) -> None:
    """What the first run shows is what there is: fixing the structural error leaves exactly the other two."""
    old, new, _ = STRUCTURAL["stage kind"]
    _, first = validate(tmp_path, with_mistakes(ALPHAS, LENGTH, (old, new)))
    _, second = validate(tmp_path, with_mistakes(ALPHAS, LENGTH))
    assert set(errors(second)) < set(errors(first)) and len(errors(second)) == 2, (first.output, second.output)


def test_a_component_of_weight_zero_sets_no_limit_even_beside_a_structural_error(tmp_path: Path) -> None:
    """With valid fixed alphas that never run GPT-2, its 128 positions do not bound the data (as without the
    structural error): only the structural error is shown."""
    old, new, fragment = STRUCTURAL["stage kind"]
    text = with_mistakes(("mixture: fixed([[0.8, 0.2], [0.3, 0.7]])", "mixture: fixed([[0.0, 1.0], [0.0, 1.0]])"),
                         LENGTH, (old, new))
    _, result = validate(tmp_path, text)
    assert result.exit_code == 2 and len(errors(result)) == 1 and fragment in errors(result)[0], result.output


def test_programmed_alphas_are_checked_beside_a_structural_error(tmp_path: Path) -> None:
    import json

    (tmp_path / "alphas.json").write_text(json.dumps({"alphas": [[0.9, 0.2], [0.3, 0.7]], "components": ["gpt", "ssm"]}))
    old, new, fragment = STRUCTURAL["stage name"]
    text = with_mistakes(("fixed([[0.8, 0.2], [0.3, 0.7]])", "programmed(alphas.json)"), LENGTH, (old, new))
    path, result = validate(tmp_path, text)
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    line, col = located(text, "alphas.json")
    assert f"{path}:{line}:{col}: error: alpha row 0 sums to 1.1, not 1" in result.output, result.output
    assert "sequences of 512 tokens (length=512) are longer than 'gpt' allows (128)" in result.output
    assert any(fragment in e for e in errors(result)) and len(errors(result)) == 3, result.output

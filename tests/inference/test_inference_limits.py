"""Inference within the model's limits: ``hybridc generate`` with a prompt and ``--max-new-tokens`` past a
component's positions, and ``hybridc eval --data`` with longer sequences or a larger vocabulary than the model
takes, are refused before the model runs (exit 2, the limit and the option to change in the message), not
left to fail midway with an IndexError (exit 70)."""

from __future__ import annotations

import textwrap

import pytest
from click.testing import CliRunner

from hybridc.cli import main
from hybridc.errors import RunError
from hybridc.inference.generate import LimitError
from hybridc.models.hybrid import lower
from hybridc.spec import load_spec
from tests.specs import write_spec

POSITIONS = 32
SPEC = textwrap.dedent(f"""\
    hybridc: 1
    name: limits
    tokenizer: bytes
    components:
      neo: {{init: {{family: gpt2, hidden_size: 32, layers: 2, heads: 4, vocab_size: 259, max_length: {POSITIONS}}}, blocks: split(2)}}
      ssm: {{init: {{family: mamba, hidden_size: 32, layers: 2, vocab_size: 259}}, blocks: split(2)}}
    hybrid: {{mixture: search}}
    """)


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def refused(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "internal error" not in result.output, result.output
    return result.output


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    directory = tmp_path_factory.mktemp("limits")
    lower(load_spec(write_spec(directory, SPEC))).save_pretrained(directory / "saved")
    (directory / "corpus.txt").write_text("the cat sat on the mat; a dog ran. " * 60)
    return directory / "saved"


def test_a_limit_error_is_a_run_error() -> None:
    assert issubclass(LimitError, RunError) and LimitError.exit_code == 2


def test_generate_past_the_positions_is_refused(saved) -> None:
    output = refused(run("generate", saved, "hello", "--max-new-tokens", 40))
    assert ("error: prompt (5 tokens) + --max-new-tokens 40 exceeds the model's 32 positions (component 'neo') "
            "(hint: lower --max-new-tokens to at most 27 or shorten the prompt)") in output


def test_generate_with_a_prompt_longer_than_the_positions_is_refused(saved) -> None:
    output = refused(run("generate", saved, "x" * 40, "--max-new-tokens", 1))
    assert "error: the prompt (40 tokens) is longer than the model's 32 positions (component 'neo')" in output
    assert "shorten the prompt" in output


def test_generate_up_to_the_positions_runs(saved) -> None:
    result = run("generate", saved, "hello", "--max-new-tokens", POSITIONS - 5)
    assert result.exit_code == 0, result.output
    beams = run("generate", saved, "hello", "--max-new-tokens", 28, "--num-beams", 2)
    assert "exceeds the model's 32 positions" in refused(beams)


@pytest.mark.parametrize("data, column, message, hint", [
    ("recall(vocab=16, length=64)", 18, "the test split's sequences of 64 tokens (length=64) are longer than the "
     "model's 32 positions (component 'neo')", "set length=32 or less in --data"),
    ("text(corpus.txt, block=64)", 18, "the test split's sequences of 64 tokens (block=64) are longer than the "
     "model's 32 positions (component 'neo')", "set block=32 or less in --data"),
    ("recall(vocab=300, length=16)", 8, "the data uses token ids up to 299 (vocab=300), outside the model's "
     "vocabulary of 259 tokens", "set vocab=259 or less in --data"),
])
def test_eval_data_past_the_model_is_refused(saved, monkeypatch, data, column, message, hint) -> None:
    monkeypatch.chdir(saved.parent)
    output = refused(run("eval", saved, "--data", data))
    assert f"--data:1:{column}: error: {message} (hint: {hint})" in output, output
    assert "loss:" not in output


def test_eval_within_the_model_runs(saved, monkeypatch) -> None:
    monkeypatch.chdir(saved.parent)
    for data in ("recall(vocab=16, length=32)", "text(corpus.txt, block=32)"):
        result = run("eval", saved, "--data", data)
        assert result.exit_code == 0 and "loss:" in result.output, result.output


def test_a_component_that_never_runs_sets_no_limit(tmp_path) -> None:
    """Fixed alphas that give GPT-2 weight 0 in every block never run it: its positions do not bound the
    prompt (only Mamba runs, which has none)."""
    spec = SPEC.replace("mixture: search", "mixture: 'fixed([[0.0, 1.0], [0.0, 1.0]])'")
    lower(load_spec(write_spec(tmp_path, spec))).save_pretrained(tmp_path / "saved")
    result = run("generate", tmp_path / "saved", "x" * 40, "--max-new-tokens", 8)
    assert result.exit_code == 0, result.output


def test_a_plain_export_is_checked_against_its_own_positions(tmp_path) -> None:
    spec = SPEC.replace("mixture: search", "mixture: 'fixed([[1.0, 0.0], [1.0, 0.0]])'")
    lower(load_spec(write_spec(tmp_path, spec))).save_pretrained(tmp_path / "saved")
    result = run("discretize", tmp_path / "saved", "-o", tmp_path / "plain")
    assert result.exit_code == 0 and "plain" in result.output, result.output
    output = refused(run("generate", tmp_path / "plain", "hello", "--max-new-tokens", 30))
    assert "prompt (5 tokens) + --max-new-tokens 30 exceeds the model's 32 positions (component 'neo')" in output
    assert run("generate", tmp_path / "plain", "hello", "--max-new-tokens", 27).exit_code == 0

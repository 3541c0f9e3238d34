"""`hybridc program`'s input-length rule on the specs it is for: data longer than a component allows.

The front end rejects such a spec ("sequences of N tokens are longer than 'X' allows"); program sets
exactly that error aside, gives the component weight 0 in every block and renormalises the rows.
"""

from __future__ import annotations

import json
import textwrap

import pytest
from click.testing import CliRunner

from hybridc.cli import main
from hybridc.errors import SpecError
from hybridc.spec import load_spec
from tests.specs import write_spec

SPEC = textwrap.dedent("""\
    hybridc: 1
    name: long
    # a GPT-2 whose position table stops at 32, and two Mambas
    components:
      gpt: {init: {family: gpt2, hidden_size: 16, layers: 2, heads: 2, vocab_size: 16, max_length: 32}, blocks: split(2)}
      ssm: {init: {family: mamba, hidden_size: 16, layers: 2, vocab_size: 16}, blocks: split(2)}
      ssm2: {init: {family: mamba, hidden_size: 16, layers: 2, vocab_size: 16}, blocks: split(2)}
    hybrid: {mixture: search}
    train:
      stages:
        - {name: search, data: "DATA", steps: 2, batch_size: 8}
    """)

# per task, per block: (gpt, ssm, ssm2)
RESULTS = {"spec": "long", "components": ["gpt", "ssm", "ssm2"], "blocks": 2,
           "tasks": {"a": {"alphas": [[0.5, 0.3, 0.2], [0.2, 0.2, 0.6]]},
                     "b": {"alphas": [[0.3, 0.1, 0.6], [0.4, 0.4, 0.2]]}}}


def program(tmp_path, text: str, results: dict = RESULTS):
    spec = write_spec(tmp_path, text)
    (tmp_path / "mad-results.json").write_text(json.dumps(results))
    result = CliRunner().invoke(main, ["program", str(spec), "--from", str(tmp_path / "mad-results.json"),
                                       "-o", str(tmp_path / "programmed.yaml")])
    return spec, result


@pytest.mark.parametrize("data, length", [("recall(vocab=16, length=64, examples=64)", 64),
                                          # selective copying reads one position more than its length
                                          ("mad(selective-copying, preset=cpu, length=63)", 64)])
def test_a_component_too_short_for_the_data_gets_weight_zero(tmp_path, data, length):
    spec, result = program(tmp_path, SPEC.replace("DATA", data))
    with pytest.raises(SpecError, match="longer than 'gpt' allows"):
        load_spec(spec)  # what program sets aside, and nothing else
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert f"'gpt' has weight 0 in every block: it takes at most 32 tokens, the data has sequences of {length}" \
        in result.output

    payload = json.loads((tmp_path / "programmed.alphas.json").read_text())
    assert payload["components"] == ["gpt", "ssm", "ssm2"]
    assert payload["input_length"] == length and list(payload["zero"]) == ["gpt"] and "32" in payload["zero"]["gpt"]
    # block 0: mean (0.4, 0.2, 0.4) -> (0, 1/3, 2/3); block 1: mean (0.3, 0.3, 0.4) -> (0, 3/7, 4/7)
    expected = [[0.0, 1 / 3, 2 / 3], [0.0, 3 / 7, 4 / 7]]
    for row, erow in zip(payload["alphas"], expected):
        assert row[0] == 0.0 and sum(row) == pytest.approx(1.0, abs=1e-12)
        assert row == pytest.approx(erow, abs=1e-9)

    # the programmed spec reads the file back; resolved with the same rule, its mixture is the file's
    from hybridc.experiments.program import load_for_programming

    programmed = load_for_programming(tmp_path / "programmed.yaml")
    assert programmed.parsed.spec.hybrid.mixture.path == "programmed.alphas.json"
    assert [list(r) for r in programmed.rs.alphas] == payload["alphas"]
    assert "# a GPT-2 whose position table stops at 32" in (tmp_path / "programmed.yaml").read_text()
    # validate and train take it: a component with weight 0 in every block never runs, its limit does not apply
    assert load_spec(tmp_path / "programmed.yaml").alphas is not None
    assert "reject" not in result.output


def test_a_spec_no_component_can_take_is_a_clear_error(tmp_path):
    text = (SPEC.replace("DATA", "recall(vocab=16, length=64, examples=64)")
            .replace("ssm: {init: {family: mamba, hidden_size: 16, layers: 2, vocab_size: 16}",
                     "ssm: {init: {family: gpt-neox, hidden_size: 16, layers: 2, heads: 2, vocab_size: 16, max_length: 16}")
            .replace("ssm2: {init: {family: mamba, hidden_size: 16, layers: 2, vocab_size: 16}",
                     "ssm2: {init: {family: gpt2, hidden_size: 16, layers: 2, heads: 2, vocab_size: 16, max_length: 48}"))
    _, result = program(tmp_path, text)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "internal error" not in result.output
    assert "no component of this spec takes sequences of 64 tokens" in result.output
    assert "'gpt' allows 32" in result.output and "'ssm' allows 16" in result.output and "'ssm2' allows 48" in result.output
    assert not (tmp_path / "programmed.yaml").exists()


def test_other_errors_are_not_set_aside(tmp_path):
    _, result = program(tmp_path, SPEC.replace("DATA", "recall(vocab=32, length=64, examples=64)"))
    assert result.exit_code == 2, result.output
    assert "the data uses 32 tokens but the hybrid's vocabulary has 16" in result.output
    assert "longer than 'gpt' allows (32)" in result.output  # reported with the rest, as validate does
    assert not (tmp_path / "programmed.yaml").exists()


def test_all_the_searched_weight_on_the_short_component_is_an_error(tmp_path):
    results = {**RESULTS, "tasks": {"a": {"alphas": [[1.0, 0.0, 0.0], [0.2, 0.2, 0.6]]}}}
    _, result = program(tmp_path, SPEC.replace("DATA", "recall(vocab=16, length=64, examples=64)"), results)
    assert result.exit_code == 2, result.output
    assert "block 0: the searched weight is all on 'gpt', which cannot take sequences of 64 tokens" in result.output

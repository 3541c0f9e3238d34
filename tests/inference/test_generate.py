"""`hybridc generate`: streams text from a saved hybrid with its spec's tokenizer."""

from __future__ import annotations

import textwrap

from click.testing import CliRunner

from hybridc.cli import main
from hybridc.models.hybrid import lower
from hybridc.spec import load_spec
from tests.specs import write_spec

SPEC = textwrap.dedent("""\
    hybridc: 1
    name: bytes-hybrid
    tokenizer: bytes
    components:
      attn: {init: {family: gpt-neox, hidden_size: 32, layers: 2, heads: 4, vocab_size: 259, max_length: 128}, blocks: split(2)}
      ssm: {init: {family: mamba, hidden_size: 32, layers: 2, vocab_size: 259}, blocks: split(2)}
    hybrid: {mixture: search}
    """)


def test_generate_streams_text(tmp_path):
    model = lower(load_spec(write_spec(tmp_path, SPEC)))
    model.save_pretrained(tmp_path / "saved")
    runner = CliRunner()
    greedy = runner.invoke(main, ["generate", str(tmp_path / "saved"), "hello", "--max-new-tokens", "12"])
    assert greedy.exit_code == 0, greedy.output
    again = runner.invoke(main, ["generate", str(tmp_path / "saved"), "hello", "--max-new-tokens", "12"])
    assert again.stdout == greedy.stdout and greedy.stdout.endswith("\n")  # (stderr: progress)
    eager = runner.invoke(main, ["generate", str(tmp_path / "saved"), "hello", "--max-new-tokens", "12", "--decode",
                                 "eager"])
    assert eager.exit_code == 0 and eager.stdout == greedy.stdout  # the fast decode path's text is the eager one's
    sampled = runner.invoke(main, ["generate", str(tmp_path / "saved"), "hello", "--temperature", "1.0",
                                   "--seed", "3", "--max-new-tokens", "12"])
    assert sampled.exit_code == 0
    beams = runner.invoke(main, ["generate", str(tmp_path / "saved"), "hello", "--num-beams", "2",
                                 "--max-new-tokens", "5"])
    assert beams.exit_code == 0, beams.output


def test_generate_refuses_what_it_cannot_do(tmp_path):
    lower(load_spec(write_spec(tmp_path, SPEC.replace("tokenizer: bytes\n", "").replace("259", "64")))).save_pretrained(
        tmp_path / "no-tokenizer")
    result = CliRunner().invoke(main, ["generate", str(tmp_path / "no-tokenizer"), "hi"])
    assert result.exit_code == 1 and "tokenizer" in result.output and "Traceback" not in result.output

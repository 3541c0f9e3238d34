"""Canonical form: every default explicit, a fixed point, comments kept where their key survives."""

from __future__ import annotations

import random
import textwrap

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridc.spec.frontend import parse_string
from tests.specs import SMALL


def fmt(text: str, keep_comments: bool = True) -> str:
    return parse_string(text).canonical_text(keep_comments)


def test_defaults_are_explicit():
    out = fmt(SMALL)
    for line in ("tokenizer: attn", "width: max", "embeddings: mix", "head: mix", "task: causal-lm", "seed: 0",
                 "trust_remote_code: false", "kind: align", "train: [projectors, embeddings]", "batch_size: 8",
                 "schedule: linear", "data: recall(vocab=16, length=16, examples=2048, valid=0.05, test=0.05)"):
        assert line in out, line


def test_fixed_point():
    once = fmt(SMALL)
    assert fmt(once) == once
    assert parse_string(once).spec == parse_string(SMALL).spec


def test_formatting_only_differences_vanish():
    variant = textwrap.dedent("""\
        name: "small"
        hybridc: 1
        train:
          stages:
            - steps: 5
              data: recall( vocab = 16 , length=16 )
              name: align
        hybrid: {mixture: "fixed([[0.5,0.5],[.25,.75]])", projector: {ssm: mlp, attn: linear}}
        components:
          attn:
            blocks: 'split(2)'
            init: {layers: 4, family: gpt-neox, hidden_size: 32, heads: 4, vocab_size: 64, max_length: 64}
          ssm:
            blocks: [0..1, 1..3]
            init: {family: mamba, hidden_size: 24, layers: 3, vocab_size: 64}
        """)
    assert fmt(variant, keep_comments=False) == fmt(SMALL, keep_comments=False)


def test_comments_are_kept():
    text = textwrap.dedent("""\
        # my hybrid
        hybridc: 1
        name: small  # the name
        components:
          # the attention part
          attn:
            init: {family: gpt-neox, hidden_size: 32, layers: 4, heads: 4, vocab_size: 64, max_length: 64}
            blocks: split(2)  # halves
        train:
          stages:
            # first stage
            - {name: align, data: "recall()", steps: 5}
        # the end
        """)
    out = fmt(text)
    assert out.splitlines()[0] == "# my hybrid"
    assert "name: small  # the name" in out
    assert "  # the attention part\n  attn:" in out
    assert "blocks: split(2)  # halves" in out
    assert "    # first stage\n    - name: align" in out
    assert out.rstrip().endswith("# the end")
    assert fmt(out) == out


def test_schema_comment_header_is_kept():
    text = "# yaml-language-server: $schema=../schemas/hybrid-spec.schema.json\n\n" + SMALL
    assert fmt(text).startswith("# yaml-language-server: $schema=../schemas/hybrid-spec.schema.json\nhybridc: 1\n")


def _reorder(text_obj, rng, path=()):
    if isinstance(text_obj, dict):
        items = list(text_obj.items())
        if path != ("components",):  # component order is the mixing order: it means something
            rng.shuffle(items)
        return {k: _reorder(v, rng, path + (k,)) for k, v in items}
    if isinstance(text_obj, list):
        return [_reorder(v, rng, path) for v in text_obj]
    return text_obj


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([None, 2, 4]))
def test_key_order_and_style_never_matter(seed, indent):
    import yaml

    data = yaml.safe_load(SMALL)
    shuffled = _reorder(data, random.Random(seed))
    text = yaml.safe_dump(shuffled, sort_keys=False, default_flow_style=None if indent else False, indent=indent or 2)
    assert fmt(text, keep_comments=False) == fmt(SMALL, keep_comments=False)


def fmt_twice(tmp_path, stages: str) -> str:
    """`hybridc fmt` of a one-component spec with these stage lines; formatting its output again must
    change nothing. Returns the first output."""
    from hybridc.cli import main

    path = tmp_path / "spec.yaml"
    path.write_text("hybridc: 1\nname: c\ncomponents:\n"
                    "  a: {init: {family: mamba, hidden_size: 8, layers: 1, vocab_size: 8}}\n"
                    "train:\n  stages:\n" + stages)
    once = CliRunner().invoke(main, ["fmt", str(path)]).output
    path.write_text(once)
    assert CliRunner().invoke(main, ["fmt", str(path)]).output == once
    return once


@pytest.mark.parametrize("value", ['\'text("data/c #x.txt", block=16)\'', '"text(\\"data/c #x.txt\\", block=16)"',
                                   "'text(''data/c #x.txt'', block=16)'"])
def test_fmt_is_idempotent_with_hashes_inside_quoted_escapes(tmp_path, value):
    """A '#' after an escaped quote (\\" or '') is inside the string, not a comment."""
    once = fmt_twice(tmp_path, f"    - {{name: align, data: {value}, steps: 1}}\n")
    assert once.count("#") == 1  # the one in the file name: no comment made up


def test_fmt_keeps_the_comments_of_list_items(tmp_path):
    """Comments after a stage (flow or block style) used to be dropped by fmt --write."""
    once = fmt_twice(tmp_path, '    - {name: align, data: "recall(vocab=8, length=8)", steps: 1}  # the first stage\n'
                               "    - name: retrain  # the second\n      steps: 2\n")
    assert "    - name: align  # the first stage\n" in once and "    - name: retrain  # the second\n" in once


def test_an_init_key_that_is_not_a_config_attribute_is_a_located_error():
    """Found by the text fuzzer: `heads:'xxx...' 4` parsed as one odd init key, passed validate, and fmt's
    canonical output of it did not parse back. Init keys are config attributes: identifiers only."""
    from pathlib import Path

    from hybridc.errors import SpecError
    from hybridc.spec.frontend import resolve

    text = Path("specs/mad-sweep.yaml").read_text().replace("heads: 4", "heads:'" + "x" * 300 + "' 4")
    with pytest.raises(SpecError) as caught:
        resolve(parse_string(text, file="mad-sweep.yaml", base_dir=Path("specs")))
    hits = [d for d in caught.value.diagnostics if "is not a config key" in d.message]
    line = 1 + text.splitlines().index(next(row for row in text.splitlines() if "heads:'" in row))
    assert [(d.location.file, d.location.line) for d in hits] == [("mad-sweep.yaml", line)], caught.value.diagnostics


@pytest.mark.parametrize("blank", ['"\\N"', '"\\u2028"', '" "', '"\\t"'])
def test_a_blank_tokenizer_is_a_located_error_not_an_empty_canonical_form(blank):
    """Found by the text fuzzer: `tokenizer: "\\N"` (U+0085, whitespace to Python) was stripped to '' in the
    canonical form, which fmt then refused to read back. A blank tokenizer is an error where it is written."""
    from pathlib import Path

    from hybridc.errors import SpecError

    original = Path("specs/mad-sweep.yaml").read_text()
    assert "\ntokenizer: attn\n" in original
    text = original.replace("\ntokenizer: attn\n", f"\ntokenizer: {blank}\n")
    with pytest.raises(SpecError) as caught:
        parse_string(text, file="mad-sweep.yaml", base_dir=Path("specs"))
    hits = [d for d in caught.value.diagnostics if "tokenizer is blank" in d.message]
    line = 1 + text.splitlines().index(f"tokenizer: {blank}")
    assert [(d.location.file, d.location.line) for d in hits] == [("mad-sweep.yaml", line)], caught.value.diagnostics

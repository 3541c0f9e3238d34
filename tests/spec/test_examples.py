"""Every example in specs/ validates, is canonical up to comments, and compiles (configs only)."""

from __future__ import annotations

from pathlib import Path

import pytest

import hybridc
from hybridc.spec.frontend import parse_file

SPECS = sorted((Path(__file__).resolve().parents[2] / "specs").glob("*.yaml"))


def test_there_are_examples():
    names = {p.stem for p in SPECS}
    assert {"neo-mamba", "three-way", "fixed-alpha"} <= names


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_example_validates_and_compiles(path, tmp_path):
    compiled = hybridc.compile(path)
    assert compiled.graph.total_params > 0
    assert len(compiled.plan.stages) == len(compiled.spec.train.stages)
    # Canonical form of an example is stable and re-parses to the same spec.
    parsed = parse_file(path)
    text = parsed.canonical_text()
    tmp = tmp_path / path.name
    tmp.write_text(text)
    assert parse_file(tmp).spec == parsed.spec
    assert parse_file(tmp).canonical_text() == text


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_example_is_in_canonical_form(path):
    """The README recommends `hybridc fmt --check` as a pre-commit hook: the project's own examples pass it."""
    from click.testing import CliRunner

    from hybridc.cli import main

    result = CliRunner().invoke(main, ["fmt", "--check", str(path)])
    assert result.exit_code == 0, result.output


def test_pretrained_example_counts_real_parameters():
    compiled = hybridc.compile(Path(__file__).resolve().parents[2] / "specs" / "neo-mamba.yaml")
    neo = sum(n.params for n in compiled.graph.nodes() if n.component == "neo" and n.kind == "segment")
    # GPT-Neo 125M without its token embedding (38.6M, counted in 'embed'): 12 layers + wpe + ln_f.
    assert neo == 125_198_592 - 50257 * 768
    mamba = sum(n.params for n in compiled.graph.nodes() if n.component == "mamba" and n.kind == "segment")
    assert mamba == 129_135_360 - 50280 * 768


def test_the_pretrained_example_reconciles_its_tokenizers(tmp_path):
    """GPT-Neo and Mamba-130M were trained with different tokenizers (the offline Hub holds stand-ins
    that differ likewise): the example transplants Mamba's rows; without that, validate refuses it."""
    from hybridc.errors import SpecError

    example = Path(__file__).resolve().parents[2] / "specs" / "neo-mamba.yaml"
    rs = hybridc.load_spec(example)
    mamba = rs.component("mamba")
    assert mamba.vocab == "transplant" and mamba.shape.vocab_size == rs.vocab_size == 50257
    matched, total = mamba.vocab_matched
    assert 256 <= matched < total  # the byte tokens at least
    bare = tmp_path / "neo-mamba.yaml"
    bare.write_text(example.read_text().replace("    vocab: transplant", "    vocab: pretrained"))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "corpus.txt").write_text("text")
    with pytest.raises(SpecError) as err:
        hybridc.load_spec(bare)
    assert {d.location.line for d in err.value.diagnostics} == {i + 1 for i, line in enumerate(
        bare.read_text().splitlines()) if line.strip() in ("embeddings: mix", "head: mix")}

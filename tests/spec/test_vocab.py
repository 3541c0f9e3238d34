"""Tokenizer agreement at validate time: every pretrained embedding and LM head the hybrid uses must be
indexed by the hybrid's tokenizer (or say how to reconcile: vocab: new / transplant). Tokenizers are
trained here with the tokenizers library; components are configs plus tokenizer files, no weights."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from hybridc.errors import SpecError
from hybridc.spec import load_spec
from hybridc.spec.tokenizer_identity import bytes_identity, identity_of_directory
from tests.specs import write_spec
from tests.tiny_models import tiny_config

TEXT_A = ["the cat sat on the mat", "a dog ran after the cat"]
TEXT_B = ["zebras yodel quietly at dawn", "quiet zebras"]


def save_tokenizer(directory: Path, texts: list[str]) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    rust = Tokenizer(models.BPE(unk_token="<unk>"))
    rust.pre_tokenizer = pre_tokenizers.Whitespace()
    rust.train_from_iterator(texts * 20, trainers.BpeTrainer(vocab_size=60, special_tokens=["<unk>", "<eos>"]))
    PreTrainedTokenizerFast(tokenizer_object=rust, unk_token="<unk>", eos_token="<eos>").save_pretrained(directory)


def component(directory: Path, family: str, texts: list[str] | None, vocab: int = 300) -> Path:
    directory.mkdir(parents=True)
    (directory / "config.json").write_text(json.dumps(tiny_config(family, vocab_size=vocab)))
    if texts is not None:
        save_tokenizer(directory, texts)
    return directory


def spec(tmp_path: Path, *, b_texts=TEXT_B, tokenizer="a", embeddings="mix", head="mix", vocab_b=None) -> Path:
    a = component(tmp_path / "a", "gpt-neo", TEXT_A)
    b = component(tmp_path / "b", "mamba", b_texts)
    extra = f"\n    vocab: {vocab_b}" if vocab_b else ""
    return write_spec(tmp_path, textwrap.dedent(f"""\
        hybridc: 1
        name: tok
        tokenizer: {tokenizer}
        components:
          a:
            from: {a}
            blocks: split(1)
          b:
            from: {b}
            blocks: split(1)""") + extra + textwrap.dedent(f"""
        hybrid:
          embeddings: {embeddings}
          head: {head}
        """))


def errors_of(path: Path) -> list:
    with pytest.raises(SpecError) as err:
        load_spec(path)
    return list(err.value.diagnostics)


@pytest.mark.parametrize("embeddings, head, lines", [("mix", "mix", [12, 13]), ("b", "a", [12]), ("a", "b", [13]),
                                                     ("mix", "a", [12]), ("a", "mix", [13])])
def test_a_mismatch_is_located_where_the_rows_are_taken(tmp_path, embeddings, head, lines):
    found = errors_of(spec(tmp_path, embeddings=embeddings, head=head))
    assert [d.location.line for d in found] == lines
    assert all("'b' is indexed by its own tokenizer" in d.message and "vocab: transplant" in d.hint
               and "hybrid.embeddings: a" in d.hint for d in found)


def test_bytes_over_bpe_components_is_located_at_the_tokenizer(tmp_path):
    found = errors_of(spec(tmp_path, tokenizer="bytes"))
    assert [(d.location.line, d.location.col) for d in found] == [(3, 12), (3, 12)]
    assert "'bytes' (bytes, 259 ids" in found[0].message and "tokenizer: a" in found[0].hint


def test_agreeing_tokenizers_and_own_rows_are_valid(tmp_path):
    assert load_spec(spec(tmp_path / "agree", b_texts=TEXT_A)).names == ("a", "b")  # same tokenizer, trained alike
    load_spec(spec(tmp_path / "own", embeddings="a", head="a"))  # b's rows are not used
    for kind in ("new", "transplant"):
        rs = load_spec(spec(tmp_path / kind, vocab_b=kind))
        rc = rs.component("b")
        assert rc.vocab == kind and rc.shape.vocab_size == rs.vocab_size == 300
        assert rc.shape.tied_embeddings or kind == "transplant"


def test_a_component_without_tokenizer_files_is_a_warning(tmp_path):
    rs = load_spec(spec(tmp_path, b_texts=None))
    (warning,) = [w for w in rs.warnings if "tokenizer files" in w.message]
    assert warning.severity == "warning" and warning.location.line == 9  # b's from:


def test_a_transplant_report_counts_tokens_matched_by_string(tmp_path):
    rs = load_spec(spec(tmp_path, vocab_b="transplant"))
    matched, total = rs.component("b").vocab_matched
    a = identity_of_directory(tmp_path / "a").vocab
    b = identity_of_directory(tmp_path / "b").vocab
    assert total == len(a) and matched == len(set(a) & set(b)) and 0 < matched < total


def test_identity_is_the_vocabulary_not_the_file_bytes(tmp_path):
    """The same tokenizer saved by the slow (vocab.json + merges.txt) and fast (tokenizer.json) layouts,
    and with its JSON reformatted, has one identity; bytes equals its saved form."""
    from transformers import AutoTokenizer

    save_tokenizer(tmp_path / "fast", TEXT_A)
    data = json.loads((tmp_path / "fast" / "tokenizer.json").read_text())
    (tmp_path / "pretty").mkdir()
    (tmp_path / "pretty" / "tokenizer.json").write_text(json.dumps(data, indent=4, sort_keys=True))
    model = data["model"]
    (tmp_path / "slow").mkdir()
    vocab = {**model["vocab"], **{t["content"]: t["id"] for t in data["added_tokens"]}}
    (tmp_path / "slow" / "vocab.json").write_text(json.dumps(vocab))
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    (tmp_path / "slow" / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    fast, pretty, slow = (identity_of_directory(tmp_path / d) for d in ("fast", "pretty", "slow"))
    assert fast == pretty == slow
    save_tokenizer(tmp_path / "other", TEXT_B)
    assert identity_of_directory(tmp_path / "other") != fast
    from hybridc.data.tokenizer import byte_tokenizer_as_hf

    byte_tokenizer_as_hf().save_pretrained(tmp_path / "bytes")
    assert identity_of_directory(tmp_path / "bytes") == bytes_identity()
    assert AutoTokenizer.from_pretrained(tmp_path / "fast")  # the files are real tokenizers


def test_diff_and_the_graph_name_the_vocab_kind(tmp_path):
    from hybridc.graph.build import build_graph
    from hybridc.graph.render import to_text
    from hybridc.graph.diff import diff_specs

    before = load_spec(spec(tmp_path / "a", embeddings="a", head="a"))
    after = load_spec(spec(tmp_path / "b", vocab_b="new"))
    changes = {c.path: (c.before, c.after) for c in diff_specs(before.spec, after.spec, before, after)}
    assert changes["components.b.vocab"] == ("pretrained", "new")
    graph = build_graph(after)
    assert graph.node("embed").vocab == (("b", "new"),) and "embed a+b[new]" in to_text(graph)
    # b's new embedding is tied: its head owns no parameters of its own
    assert graph.node("head").params == 0


def test_the_check_reads_files_only_and_stays_torch_free(tmp_path):
    import subprocess
    import sys

    path = spec(tmp_path, vocab_b="transplant")
    script = (f"import sys, hybridc\nrs = hybridc.load_spec({str(path)!r})\n"
              "assert rs.component('b').vocab_matched is not None\n"
              "assert not {'torch', 'transformers', 'tokenizers'} & set(sys.modules), sorted(sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr

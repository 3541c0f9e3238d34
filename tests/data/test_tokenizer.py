"""Tokenizers (hybridc/data/tokenizer.py): the byte tokenizer and tokenizers loaded from files."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridc.data import ByteTokenizer, HFTokenizer, Tokenizer, load_tokenizer
from hybridc.data.tokenizer import load_hf_tokenizer
from hybridc.errors import RunError, SpecError
from hybridc.spec.frontend import parse_string, resolve
from hybridc.spec.model import BYTES_VOCAB_SIZE
from tests.hub import put_in_hub
from tests.tiny_models import tiny_config

INIT = "init: {family: gpt2, hidden_size: 32, layers: 2, heads: 4, vocab_size: 300, max_length: 64}"


def spec_with(tmp_path: Path, tokenizer: str, component: str = INIT):
    text = textwrap.dedent(f"""\
        hybridc: 1
        name: t
        tokenizer: {tokenizer}
        components:
          lm:
            {component}
        """)
    return resolve(parse_string(text, base_dir=tmp_path))


@given(st.text(max_size=200))
@settings(max_examples=200, deadline=None)
def test_bytes_round_trip(text: str) -> None:
    tok = ByteTokenizer()
    ids = tok.encode(text)
    assert all(0 <= i < 256 for i in ids)
    assert tok.decode(ids) == text
    assert tok.decode(ids + [tok.eos_id, tok.pad_id]) == text  # special ids are not text


def test_bytes_tokenizer_ids() -> None:
    tok = ByteTokenizer()
    assert (tok.pad_id, tok.bos_id, tok.eos_id, tok.vocab_size) == (256, 257, 258, BYTES_VOCAB_SIZE)
    assert tok.encode("é") == [0xC3, 0xA9]
    assert tok.encode_batch(["a", ""]) == [[97], []]
    assert isinstance(tok, Tokenizer)


def test_spec_bytes(tmp_path: Path) -> None:
    assert load_tokenizer(spec_with(tmp_path, "bytes")) == ByteTokenizer()


def test_init_component_has_no_tokenizer(tmp_path: Path) -> None:
    assert load_tokenizer(spec_with(tmp_path, "lm")) is None


def test_component_tokenizer_from_local_directory(tmp_path: Path, word_tokenizer_dir: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps(tiny_config("gpt2")))
    for f in word_tokenizer_dir.iterdir():
        (model / f.name).write_bytes(f.read_bytes())
    tok = load_tokenizer(spec_with(tmp_path, "lm", "from: model"))
    assert isinstance(tok, HFTokenizer) and isinstance(tok, Tokenizer)
    assert tok.encode("the cat sat") == [3, 4, 5]
    assert tok.encode("the zebra") == [3, 1]  # unknown word
    assert (tok.eos_id, tok.pad_id, tok.vocab_size) == (2, 0, 15)
    assert tok.encode_batch(["a mat", "dog"]) == [[7, 8], [9]]
    assert tok.decode([3, 4]) == "the cat"


def test_tokenizer_path(tmp_path: Path, word_tokenizer_dir: Path) -> None:
    tok = load_tokenizer(spec_with(tmp_path, str(word_tokenizer_dir)))
    assert isinstance(tok, HFTokenizer) and tok.encode("a dog ran") == [7, 9, 10]


def test_tokenizer_from_offline_hub(tmp_path: Path, word_tokenizer_dir: Path) -> None:
    # offline, transformers also wants the repo's config.json (a tokenizer-only repo fails)
    config = tmp_path / "config.json"
    config.write_text(json.dumps(tiny_config("gpt2")))
    put_in_hub("hybridc-tests/words", {"config.json": config, **{f.name: f for f in word_tokenizer_dir.iterdir()}})
    tok = load_tokenizer(spec_with(tmp_path, "hf:hybridc-tests/words"))
    assert isinstance(tok, HFTokenizer) and tok.encode("the dog") == [3, 9]
    tok = load_tokenizer(spec_with(tmp_path, "lm", "from: hf:hybridc-tests/words"))  # a Hub component's tokenizer
    assert isinstance(tok, HFTokenizer) and tok.encode("a cat") == [7, 4]


def test_component_without_tokenizer_files_is_a_run_error(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps(tiny_config("gpt2")))
    with pytest.raises(RunError) as info:
        load_tokenizer(spec_with(tmp_path, "lm", "from: model"))
    assert "component 'lm'" in str(info.value) and "no vocabulary" in str(info.value)
    assert "tokenizer: bytes" in (info.value.hint or "")


def test_broken_tokenizer_directory_is_refused_at_validate_and_at_load(tmp_path: Path) -> None:
    """Validate locates it; a directory broken after validate (between validate and train) is a RunError
    giving the same reason when the run loads it."""
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "tokenizer.json").write_text("{not json")
    with pytest.raises(SpecError) as located:
        spec_with(tmp_path, "broken")
    assert "tokenizer 'broken'" in str(located.value) and "not valid JSON" in str(located.value)
    with pytest.raises(RunError) as info:
        load_hf_tokenizer(str(broken), None, name="broken", what="the tokenizer 'broken'")
    assert "tokenizer 'broken'" in str(info.value) and "not valid JSON" in str(info.value) and info.value.hint
